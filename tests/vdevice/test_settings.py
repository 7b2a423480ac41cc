from __future__ import annotations

import pytest

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
