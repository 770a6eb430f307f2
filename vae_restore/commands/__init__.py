"""Sub-commands of `vae-restore`: each module has NAME, add_arguments(parser) and run(args) -> int."""
