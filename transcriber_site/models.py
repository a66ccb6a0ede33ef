"""Operators' API tokens, and the permission that makes a user an operator."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.db import models
from django.utils import timezone

OPERATE = "transcriber_site.operate"  # the permission, as user.has_perm() names it
TOKEN_BYTES = 32


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
    def user_for(cls, key: str) -> AbstractUser | None:
        """The active user whose live token `key` is, or None; the token's use is recorded."""
        token = cls.objects.select_related("user").filter(key_digest=digest(key), revoked_at=None).first()
        if token is None or not token.user.is_active:
            return None
        cls.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.user

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


def is_operator(user: AbstractUser | AnonymousUser) -> bool:
    """Is this user an operator (the permission, or a superuser)?"""
    return bool(user.is_authenticated and user.has_perm(OPERATE))
