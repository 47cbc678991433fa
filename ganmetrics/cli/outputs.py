"""Output paths the user names, checked before any work: the right suffix, a folder that exists
and can be entered and written, and not one of the inputs. Under torchrun only rank 0 writes, so
only its view of the folder counts (a refusal there reaches the other ranks at their first
exchange)."""

from pathlib import Path

from ..engine import distributed
from ..errors import GanMetricsError, quoted
from ..store.atomicfile import check_writable_folder


def _same_file(output: Path, source: str) -> bool:
    """Whether ``output`` is (or resolves to, through links) the existing file ``source``."""
    try:
        return output.exists() and Path(source).exists() and output.resolve() == Path(source).resolve()
    except OSError as err:
        raise GanMetricsError(f"cannot check {quoted(output)} ({err.strerror or err}): choose another -o") from None


def check_output(output: Path, inputs: list[str], what: str = "the images", kind: str = "statistics files",
                 option: str = "-o", suffix: str = ".npz") -> None:
    """Refuse, before any work, an ``output`` (given as ``option``) that does not end in
    ``suffix`` (``kind``: what such files hold), whose folder is missing, cannot be entered or
    is not writable, or that is one of the ``inputs`` (``what`` they hold)."""
    if not distributed.is_main():
        return
    if output.suffix.lower() != suffix:
        raise GanMetricsError(f"{option} {output}: {kind} end in {suffix}; pass e.g. {output.with_suffix(suffix)}")
    check_writable_folder(output, option)
    for source in inputs:
        if _same_file(output, source):
            raise GanMetricsError(f"{option} {output} is the input {source}: writing it would replace {what}; "
                                  f"choose another {option}")
