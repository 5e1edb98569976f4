"""How a stage handler says a job must not be retried. Plain exceptions, free of Celery,
so domain code (decoding, say) can raise them; the stage runner turns them into a failed
or skipped stage."""

from __future__ import annotations


class PermanentError(Exception):
    """The job can never succeed as given; fail the stage now with this reason."""


class ImageGone(Exception):
    """The image was deleted while the job ran: its work is void, and nothing is owed.

    A handler raises it after undoing what it wrote (e.g. objects stored before it found
    the image gone when recording them).
    """
