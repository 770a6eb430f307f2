"""Files -> decode -> pixel cache -> crops on the training device."""
