from __future__ import annotations

from pathlib import Path

import pytest

from avsd.cli import EXIT_CONFIG, main
from avsd.errors import ConfigError
from avsd.vdevice.homophones import apply_homophones
from avsd.vdevice.settings import VdeviceSettings, homophones_of


def test_config_homophones_parse_and_apply() -> None:
    common, per_token = homophones_of(VdeviceSettings(
        homophones=("quiz=kiwis,squeeze",), token_homophones=("vdevice-0123abcd4567:test=tess",)
    ))
    assert apply_homophones("welcome to the kiwis", common) == "welcome to the quiz"
    assert apply_homophones("a tess", per_token["vdevice-0123abcd4567"]) == "a test"


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        (VdeviceSettings(homophones=("no equals sign",)), "vdevice.homophones"),
        (VdeviceSettings(homophones=("word=",)), "vdevice.homophones"),
        (VdeviceSettings(token_homophones=("word=heard",)), "vdevice.token_homophones"),
    ],
)
def test_bad_homophone_config_names_the_key(settings: VdeviceSettings, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        homophones_of(settings)
    assert info.value.key == key


@pytest.mark.parametrize(("toml", "key"), [("stt_workers = -1", "vdevice.stt_workers"),
                                           ("stt_workers = 'many'", "vdevice.stt_workers")])
def test_bad_worker_counts_are_one_line_and_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, key: str
) -> None:
    path = tmp_path / "avsd.toml"
    path.write_text(f"[vdevice]\n{toml}\n")
    assert main(["vdevice", "--config", str(path), "--state-dir", str(tmp_path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"avsd: {key}"), err
