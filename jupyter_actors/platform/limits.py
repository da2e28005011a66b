"""Resource rules of the seed: memory values, CPU = memory/4096 cores, disk = 2 x memory, input size."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InvalidInput

MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 32768
ALLOWED_MEMORY_MB = tuple(2**i for i in range(7, 16))  # 128 .. 32768
MAX_INPUT_CHARS = 1_000_000
MB_PER_CORE = 4096
#: The longest timeout: about 68 years, effectively none, yet its deadline is still a valid date.
MAX_TIMEOUT_SECS = 2**31 - 1


def _whole_number(value: object) -> int | None:
    """An int, or a string of digits (query parameters arrive as text); anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 20:
        return int(value.strip())  # ASCII only: "²".isdigit() is True, but int("²") raises
    return None


def validate_memory(memory_mb: object) -> int:
    value = _whole_number(memory_mb)
    if value not in ALLOWED_MEMORY_MB:
        allowed = ", ".join(str(v) for v in ALLOWED_MEMORY_MB)
        raise InvalidInput(
            f"Memory must be a power of two between {MIN_MEMORY_MB} and {MAX_MEMORY_MB} MB "
            f"(one of {allowed}); got {str(memory_mb)[:50]!r}."
        )
    return value  # type: ignore[return-value]


def memory_range(default_mb: int | None, min_mb: object, max_mb: object) -> tuple[int | None, int | None]:
    """An actor's allowed memory (actor.json ``minMemoryMbytes``/``maxMemoryMbytes``), checked with its default."""
    low = validate_memory(min_mb) if min_mb is not None else None
    high = validate_memory(max_mb) if max_mb is not None else None
    if low is not None and high is not None and low > high:
        raise InvalidInput(f"minMemoryMbytes ({low}) is above maxMemoryMbytes ({high}).")
    if default_mb is not None and not check_memory_in_range(default_mb, low, high, raise_error=False):
        raise InvalidInput(f"defaultMemoryMbytes ({default_mb}) is outside minMemoryMbytes/maxMemoryMbytes "
                           f"({low or MIN_MEMORY_MB}-{high or MAX_MEMORY_MB} MB).")
    return low, high


def check_memory_in_range(memory_mb: int, min_mb: int | None, max_mb: int | None, *, raise_error: bool = True) -> bool:
    """A run's memory against its actor's range; InvalidInput saying the range when outside."""
    if (min_mb is None or memory_mb >= min_mb) and (max_mb is None or memory_mb <= max_mb):
        return True
    if raise_error:
        raise InvalidInput(f"This actor runs with {min_mb or MIN_MEMORY_MB} to {max_mb or MAX_MEMORY_MB} MB "
                           f"(minMemoryMbytes/maxMemoryMbytes of its actor.json); {memory_mb} MB was asked for.")
    return False


def validate_timeout(timeout_secs: object) -> int:
    value = _whole_number(timeout_secs)
    if value is None or value < 0 or value > MAX_TIMEOUT_SECS:
        raise InvalidInput(
            f"Timeout must be a whole number of seconds from 0 (no timeout) to {MAX_TIMEOUT_SECS}; "
            f"got {str(timeout_secs)[:50]!r}."
        )
    return value


def validate_input(body: bytes | str | None) -> None:
    if body is None:
        return
    text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidInput(
            f"Input is {len(text):,} characters long; the maximum is {MAX_INPUT_CHARS:,}. "
            "Store large data in a key-value store or dataset and pass its id instead."
        )


def host_cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ContainerLimits:
    """What a run of ``memory_mb`` gets; ``cpu_cores`` is the effective share recorded on the run."""

    memory_mb: int
    cpu_cores: float
    disk_mb: int
    cpu_mode: str  # "quota" (hard, the seed's rule) or "shares" (proportional weight)
    pids: int

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024

    @property
    def nano_cpus(self) -> int:
        return int(self.cpu_cores * 1e9)

    @property
    def cpu_shares(self) -> int:
        # Docker's default weight is 1024 for a full core; keep the same proportion.
        return max(2, int(self.cpu_cores * 1024))


def limits_for(memory_mb: int, *, cpu_mode: str = "quota", pids: int = 1024,
               cores: int | None = None) -> ContainerLimits:
    """Docker refuses a CPU share above the host's cores, so the share is capped there."""
    cores = cores or host_cores()
    share = min(memory_mb / MB_PER_CORE, float(cores))
    return ContainerLimits(memory_mb=memory_mb, cpu_cores=share, disk_mb=2 * memory_mb, cpu_mode=cpu_mode, pids=pids)
