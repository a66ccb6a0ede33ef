from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from media_app.models import MediaFile, MediaInUse, deleting
from sessions_app.models import LIVE


@receiver(deleting, sender=MediaFile)
def refuse_deleting_media_in_use(sender: type[MediaFile], instance: MediaFile, **kwargs: Any) -> None:
    """A recording a live session plays cannot be deleted; ended sessions keep its name."""
    live = list(instance.sessions.filter(state__in=LIVE).values_list("pk", flat=True))
    if live:
        which = ", ".join(str(pk) for pk in live)
        sessions = f"sessions {which}; stop them" if len(live) > 1 else f"session {which}; stop it"
        raise MediaInUse(f"'{instance.filename}' is playing in live {sessions} first.")
