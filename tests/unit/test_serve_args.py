"""`receiptd serve --workers N` (contract §1): parsed, bounded, and the child's own flag hidden."""

from __future__ import annotations

import pytest

from server.cli import _parser


def test_workers_flag_is_parsed_and_bounded(capsys) -> None:
    args = _parser().parse_args(["serve", "--workers", "2"])
    assert (args.workers, args.worker_index) == (2, None)
    assert _parser().parse_args(["serve"]).workers is None  # then server.workers decides
    for bad in ("0", "65", "two"):
        with pytest.raises(SystemExit):
            _parser().parse_args(["serve", "--workers", bad])
    assert "1 to 64" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--help"])
    assert "--worker-index" not in capsys.readouterr().out


def test_several_workers_need_a_fixed_port(capsys) -> None:
    from config.settings import Settings
    from server.cli import _serve

    settings = Settings(server={"port": 0, "workers": 2})
    assert _serve(settings, _parser().parse_args(["serve"])) == 2
    assert "fixed server.port" in capsys.readouterr().err
