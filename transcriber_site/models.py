"""Operators' API tokens, and the permission that makes a user an operator."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.db import DatabaseError, models
from django.utils import timezone

log = logging.getLogger(__name__)

OPERATE = "transcriber_site.operate"  # the permission, as user.has_perm() names it
TOKEN_BYTES = 32
LAST_USED_EVERY = timedelta(minutes=1)


def digest(key: str) -> str:
    """What is stored of a token: its SHA-256, so that a copy of the database signs nobody in."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A secret that acts as its operator: `Authorization: Bearer <key>` (scripts) or a sign-in link."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for")
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False, help_text="The key's first characters, to tell it apart")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # A sign-in link (`serve --sign-in-link`): good for one browser sign-in, never as a Bearer token.
    single_use = models.BooleanField(default=False, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("operate", "Can operate: upload and delete media, start, pause and stop sessions")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}{', revoked' if self.revoked_at else ''})"

    @classmethod
    def issue(cls, user: AbstractUser, name: str = "") -> tuple[ApiToken, str]:
        """A new token for `user`, and its key: shown once, never stored."""
        key = secrets.token_urlsafe(TOKEN_BYTES)
        token = cls.objects.create(user=user, name=name, key_digest=digest(key), prefix=key[:8])
        return token, key

    @classmethod
    def issue_sign_in_link(cls, user: AbstractUser, lifetime_secs: float) -> str:
        """The key of a one-time sign-in link for `user`, good for `lifetime_secs`."""
        key = secrets.token_urlsafe(TOKEN_BYTES)
        cls.objects.create(
            user=user,
            name="one-time sign-in link",
            key_digest=digest(key),
            prefix=key[:8],
            single_use=True,
            expires_at=timezone.now() + timedelta(seconds=lifetime_secs),
        )
        return key

    @classmethod
    def _live(cls, key: str) -> ApiToken | None:
        token = cls.objects.select_related("user").filter(key_digest=digest(key), revoked_at=None).first()
        if token is None or not token.user.is_active:
            return None
        if token.expires_at is not None and token.expires_at <= timezone.now():
            return None
        return token

    @classmethod
    def user_for(cls, key: str) -> AbstractUser | None:
        """The active user whose live API token `key` is, or None; the token's use is recorded.

        A one-time sign-in link's key is not an API token: it signs a browser in once, no more.
        """
        token = cls._live(key)
        if token is None or token.single_use:
            return None
        token.note_use()
        return token.user

    def note_use(self) -> None:
        """Record the token's use, at most once a minute: a script's every call is no write, and a
        database that cannot take the write (locked, full) costs the request nothing."""
        now = timezone.now()
        if self.last_used_at is not None and now - self.last_used_at < LAST_USED_EVERY:
            return
        try:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
        except DatabaseError as exc:
            log.warning("token %s…: its use was not recorded: %s", self.prefix, exc)

    @classmethod
    def user_signing_in(cls, key: str) -> AbstractUser | None:
        """The user a sign-in link (`/?token=<key>`) signs in, or None; a one-time link is used up.

        Any API token works as a link too: whoever holds it can act as its operator anyway.
        """
        token = cls._live(key)
        if token is None:
            return None
        now = timezone.now()
        if token.single_use:
            # the row's update is the claim: of two requests with the same link, one signs in
            if cls.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=now, last_used_at=now) != 1:
                return None
        else:
            token.note_use()
        return token.user

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


def is_operator(user: AbstractUser | AnonymousUser) -> bool:
    """Is this user an operator (the permission, or a superuser)?"""
    return bool(user.is_authenticated and user.has_perm(OPERATE))
