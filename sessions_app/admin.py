from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from sessions_app.models import TranscriptionSession, TranscriptSegment, TransitionError, WorkerLoad
from transcriber_site.models import is_operator


class SegmentInline(admin.TabularInline[TranscriptSegment, TranscriptionSession]):
    model = TranscriptSegment
    fields = ["index", "start_time", "end_time", "text", "speaker"]
    readonly_fields = ["index", "start_time", "end_time", "text", "speaker"]
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(TranscriptionSession)
class SessionAdmin(admin.ModelAdmin[TranscriptionSession]):
    list_display = [
        "id",
        "state",
        "model_id",
        "media_filename",
        "progress",
        "clients",
        "degraded",
        "created_at",
        "created_by",
        "stopped_by",
    ]
    list_filter = ["state", "model_id"]
    search_fields = ["media_filename", "model_id", "worker_id"]
    actions = ["stop_sessions", "pause_sessions", "resume_sessions"]
    inlines = [SegmentInline]
    readonly_fields = [f.name for f in TranscriptionSession._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions start through the API or the page, which dispatch them to a worker

    @admin.display(description="progress")
    def progress(self, session: TranscriptionSession) -> str:
        return f"{session.position():.0f} / {session.duration_secs:.0f} s"

    @admin.display(description="listeners")
    def clients(self, session: TranscriptionSession) -> int:
        return session.client_count

    def _each(self, request: HttpRequest, queryset: QuerySet[TranscriptionSession], verb: str) -> None:
        done = 0
        for session in queryset:
            try:
                if verb == "stop":
                    session.stop("Stopped by an operator in the admin.", by=request.user)
                elif verb == "pause":
                    session.pause()
                else:
                    session.resume()
                done += 1
            except TransitionError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if done:
            self.message_user(request, f"{verb.capitalize()}: {done} session(s).", messages.SUCCESS)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user)  # staff who only view sessions cannot stop them

    @admin.action(description="Stop the selected sessions", permissions=["operate"])
    def stop_sessions(self, request: HttpRequest, queryset: QuerySet[TranscriptionSession]) -> None:
        self._each(request, queryset, "stop")

    @admin.action(description="Pause the selected sessions", permissions=["operate"])
    def pause_sessions(self, request: HttpRequest, queryset: QuerySet[TranscriptionSession]) -> None:
        self._each(request, queryset, "pause")

    @admin.action(description="Resume the selected sessions", permissions=["operate"])
    def resume_sessions(self, request: HttpRequest, queryset: QuerySet[TranscriptionSession]) -> None:
        self._each(request, queryset, "resume")


@admin.register(WorkerLoad)
class WorkerLoadAdmin(admin.ModelAdmin[WorkerLoad]):
    """What each worker's pass schedulers measured at its last heartbeat (read only)."""

    list_display = ["worker_id", "beat_at", "sessions", "capacity", "load"]
    readonly_fields = [f.name for f in WorkerLoad._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WorkerLoad | None = None) -> bool:
        return False

    @admin.display(description="models")
    def load(self, worker: WorkerLoad) -> str:
        return "; ".join(
            f"{model_id}: {m['streams']} streams, {m['busy']:.0%} busy, final p95 "
            f"{m['final_p95_secs'] if m['final_p95_secs'] is not None else '-'} s"
            f"{'' if m['admits'] else ', refusing'}"
            for model_id, m in worker.models_load.items()
        )
