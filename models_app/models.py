from __future__ import annotations

from django.db import models


class SpeechModel(models.Model):
    """No table: an entry for the admin, whose page lists the registry's models read-only."""

    class Meta:
        managed = False
        verbose_name = "speech model"
        verbose_name_plural = "speech models"

    def __str__(self) -> str:
        return "speech model"
