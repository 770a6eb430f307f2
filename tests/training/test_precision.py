"""CPU precision: bf16 where the CPU computes it natively, fp32 elsewhere, said in one log line."""

from __future__ import annotations

import logging

import pytest

from vae_restore.training import precision


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setattr(precision, "trains_on_cpu", lambda: True)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)


def test_bf16_stays_bf16_on_a_cpu_with_native_bf16(on_cpu, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: "AVX-512 BF16")
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert precision.resolve_mixed_precision("bf16") == "bf16"
    assert [r.getMessage() for r in caplog.records] == [
        "CPU training in bf16 autocast: this CPU has native bf16 (AVX-512 BF16)"
    ]


def test_bf16_becomes_fp32_on_a_cpu_without_native_bf16(on_cpu, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: None)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch` passes from cpu.yaml
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert precision.resolve_mixed_precision(None) == "no"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("CPU training in fp32: accelerate asked for bf16")


def test_the_training_scripts_own_bf16_is_kept_even_without_native_bf16(on_cpu, monkeypatch, caplog):
    """`--mixed_precision bf16` (or a config.json that records it) repeats a run exactly, emulated or not."""
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: None)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert precision.resolve_mixed_precision("bf16") == "bf16"
    assert [r.getMessage() for r in caplog.records] == [
        "CPU training in bf16 autocast as asked, emulated: this CPU has no native bf16 (slower)"
    ]


def test_fp32_is_left_alone_and_said(on_cpu, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: pytest.fail("not asked for bf16"))
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert precision.resolve_mixed_precision(None) == "no"
    assert [r.getMessage() for r in caplog.records] == ["CPU training in fp32"]


def test_gpu_runs_keep_what_they_asked_for(monkeypatch, caplog):
    monkeypatch.setattr(precision, "trains_on_cpu", lambda: False)
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: None)
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert precision.resolve_mixed_precision("bf16") == "bf16"
        assert precision.resolve_mixed_precision("fp16") == "fp16"
    assert not caplog.records


def test_accelerate_use_cpu_means_the_cpu(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    assert precision.trains_on_cpu()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 sse\n", {"fpu", "avx512f", "avx512_bf16", "sse"}),
        ("processor\t: 0\nFeatures\t: fp asimd bf16\n", {"fp", "asimd", "bf16"}),
        ("processor\t: 0\n", set()),
    ],
)
def test_cpuinfo_flags_are_read_from_the_first_cpu(tmp_path, text, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert precision.cpuinfo_flags(path) == expected


def test_cpuinfo_flags_of_a_missing_file_are_none(tmp_path):
    assert precision.cpuinfo_flags(tmp_path / "absent") == set()
