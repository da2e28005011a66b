import pytest

from jupyter_actors.platform.errors import InvalidInput
from jupyter_actors.platform.limits import (
    ALLOWED_MEMORY_MB, limits_for, validate_input, validate_memory, validate_timeout,
)


def test_allowed_memory_values_are_powers_of_two_from_128_to_32768():
    assert ALLOWED_MEMORY_MB[0] == 128 and ALLOWED_MEMORY_MB[-1] == 32768
    for value in ALLOWED_MEMORY_MB:
        assert validate_memory(value) == value
        assert validate_memory(str(value)) == value


@pytest.mark.parametrize("bad", [0, 64, 100, 129, 300, 65536, -128, "abc", None, 256.5, True])
def test_bad_memory_is_refused_with_the_allowed_values(bad):
    with pytest.raises(InvalidInput) as info:
        validate_memory(bad)
    assert "128" in info.value.message and "32768" in info.value.message and "power of two" in info.value.message


def test_timeout():
    assert validate_timeout(0) == 0
    assert validate_timeout("60") == 60
    for bad in (-1, "x", 1.5, None):
        with pytest.raises(InvalidInput):
            validate_timeout(bad)


def test_input_size_limit_counts_characters():
    validate_input("x" * 1_000_000)
    validate_input("é" * 1_000_000)  # 2 MB of UTF-8 but 1M characters
    with pytest.raises(InvalidInput) as info:
        validate_input("x" * 1_000_001)
    assert "1,000,000" in info.value.message


def test_cpu_share_is_memory_over_4096_capped_at_host_cores():
    assert limits_for(1024, cores=2).cpu_cores == 0.25
    assert limits_for(128, cores=2).cpu_cores == 1 / 32
    assert limits_for(32768, cores=2).cpu_cores == 2
    assert limits_for(512, cores=2).nano_cpus == 125_000_000
    assert limits_for(1024, cores=2).disk_mb == 2048
    assert limits_for(1024, cpu_mode="shares", cores=2).cpu_shares == 256
