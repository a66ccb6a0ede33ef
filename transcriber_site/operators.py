"""Making operators: the `Operators` group, `create_operator`, and the first run's local operator."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db.models import Q

from transcriber_site.models import OPERATE, ApiToken

GROUP = "Operators"
LOCAL = "local"  # the operator `make run` creates on a machine that has none

# What the group may do: operate, and in the admin see and handle media, sessions and tokens.
_PERMISSIONS = [
    ("transcriber_site", "operate"),
    ("transcriber_site", "view_apitoken"),
    ("transcriber_site", "change_apitoken"),
    ("media_app", "view_mediafile"),
    ("media_app", "change_mediafile"),
    ("media_app", "delete_mediafile"),
    ("sessions_app", "view_transcriptionsession"),
]


def operators_group() -> Group:
    """The `Operators` group with its permissions; a user added to it in the admin is an operator."""
    group, _ = Group.objects.get_or_create(name=GROUP)
    wanted = Q()
    for app, codename in _PERMISSIONS:
        wanted |= Q(content_type__app_label=app, codename=codename)
    group.permissions.add(*Permission.objects.filter(wanted))
    return group


def make_operator(name: str, superuser: bool = False) -> tuple[AbstractUser, bool]:
    """The user `name`, created if needed (with no password: it signs in by link), as an operator."""
    users = get_user_model()
    user, created = users.objects.get_or_create(username=name)
    if created:
        user.set_unusable_password()  # `manage.py changepassword NAME` sets one for the sign-in page
    user.is_staff = True  # the admin lists and revokes tokens, and handles media and sessions
    user.is_superuser = user.is_superuser or superuser
    user.save()
    user.groups.add(operators_group())
    return user, created


def any_operator() -> bool:
    users = get_user_model().objects.filter(is_active=True)
    app, codename = OPERATE.split(".")
    with_permission = Q(user_permissions__codename=codename, user_permissions__content_type__app_label=app) | Q(
        groups__permissions__codename=codename, groups__permissions__content_type__app_label=app
    )
    return users.filter(Q(is_superuser=True) | with_permission).exists()


def first_run_sign_in_link() -> tuple[str, str] | None:
    """(user name, one-time key) for the console's sign-in link; None when there is no local operator.

    On a machine with no operator at all, the local operator is created first: a superuser,
    since whoever runs the server on their machine owns it.
    """
    if not any_operator():
        make_operator(LOCAL, superuser=True)
    user = get_user_model().objects.filter(username=LOCAL, is_active=True).first()
    if user is None or not user.has_perm(OPERATE):
        return None  # operators were made by hand; they sign in on the sign-in page
    return user.get_username(), ApiToken.issue_sign_in_link(user, settings.SIGN_IN_LINK_TTL_SECS)
