"""Teams in the admin (issue 31): the class's teams, who is in which, and the team standings.

Every change goes through scoring.teams, so each is checked, audited and recorded as an
event; the admin never saves a team or a membership itself:

- adding a team (a name) is team_create_for, saving its page team_rename;
- "New invite code" (a team's page, or the list's action) is team_new_code;
- "Merge selected teams into…" asks for the team they go into, then team_merge for each;
- "Dissolve selected teams" (and a team's delete page) says what happens, then team_dissolve;
- "Move to team…" (team members) asks for a team or no team, then team_move for each student;
  adding a team member puts a student who is in no team into one (team_move too).

A refusal (a name taken, a team full) is an error message on the page and nothing
changes: a selection is merged, dissolved or moved wholly or not at all.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from tenants.models import Tenant
from vulhub.lib.admin import CappedCountPaginator, ReadOnlyAdminMixin, TenantScopedAdminMixin, request_tenant_id

from . import teams
from .badge_admin import student_label
from .models import Team, TeamLeaderboard, TeamMembership
from .services import ScoringError

# An action takes at most this many teams or students at once: each locks its rows.
AT_ONCE = 100
CONFIRM_TEMPLATE = "admin/scoring/team/confirm.html"


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def with_standing(queryset):
    """Teams with their member count, points and rank (each a subquery: no GROUP BY over the list)."""
    members = (
        TeamMembership.objects.filter(team_id=OuterRef("pk"))
        .order_by()
        .values("team_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    row = TeamLeaderboard.objects.filter(team_id=OuterRef("pk"))
    return queryset.annotate(
        member_count=Coalesce(Subquery(members), 0),
        team_points=Coalesce(Subquery(row.values("points")[:1]), 0),
        team_rank=Subquery(row.values("rank")[:1]),
    )


def request_tenant(request) -> Tenant:
    """The class the admin request works in (its host's), with its team size."""
    tenant = getattr(request, "tenant", None)
    return tenant if tenant is not None else Tenant.objects.get(pk=request_tenant_id(request))


def class_teams(request):
    return Team.objects.for_tenant(request_tenant_id(request)).order_by("name", "pk")


# --- the list's filters -------------------------------------------------------------------


class ChoiceFilter(admin.SimpleListFilter):
    """A filter of fixed choices; any other value is an invalid filter (the list's "?e=1" page), not a 500."""

    options: dict[str, str] = {}

    def lookups(self, request, model_admin):
        return list(self.options.items())

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value not in self.options:
            raise IncorrectLookupParameters(f"Unknown {self.parameter_name} {value!r}.")
        return self.narrow(request, queryset, value)


class MembersFilter(ChoiceFilter):
    title = "members"
    parameter_name = "members"
    options = {"some": "Has members", "none": "Empty"}

    def narrow(self, request, queryset, value):
        return queryset.filter(member_count__gt=0) if value == "some" else queryset.filter(member_count=0)


class ScoredFilter(ChoiceFilter):
    title = "points"
    parameter_name = "scored"
    options = {"yes": "Scored", "no": "Not scored yet"}

    def narrow(self, request, queryset, value):
        return queryset.filter(team_points__gt=0) if value == "yes" else queryset.filter(team_points=0)


class RoomFilter(ChoiceFilter):
    title = "room"
    parameter_name = "room"
    options = {"full": "Full", "room": "Has room"}

    def narrow(self, request, queryset, value):
        size = request_tenant(request).team_size_max
        return queryset.filter(member_count__gte=size) if value == "full" else queryset.filter(member_count__lt=size)


class TenantTeamFilter(admin.RelatedFieldListFilter):
    """The class's teams as filter choices, read from the small teams table."""

    def field_choices(self, field, request, model_admin):
        return [(team.pk, team.name) for team in class_teams(request).only("pk", "name")]


# --- the forms of the pages between an action and its work ---------------------------------


class TeamChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.name


class MergeForm(forms.Form):
    into = TeamChoiceField(
        queryset=Team.objects.none(),
        label="Merge into",
        help_text="The team that stays: the other selected teams’ members, answers and hint unlocks go to it.",
        error_messages={"required": "Choose the team to merge into.", "invalid_choice": "Choose a team of the list."},
    )

    def __init__(self, *args, teams_of_class, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["into"].queryset = teams_of_class


NO_TEAM = "none"


class MoveForm(forms.Form):
    team = forms.ChoiceField(
        label="Move to",
        help_text="“No team”: the students leave their team and play alone. Their points stay where they were earned.",
        error_messages={"required": "Choose a team, or “No team”.", "invalid_choice": "Choose a team of the list."},
    )

    def __init__(self, *args, teams_of_class, **kwargs):
        super().__init__(*args, **kwargs)
        self.teams = {str(team.pk): team for team in teams_of_class}
        self.fields["team"].choices = [
            ("", "Choose…"),
            (NO_TEAM, "No team"),
            *((pk, team.name) for pk, team in self.teams.items()),
        ]

    def chosen(self) -> Team | None:
        value = self.cleaned_data["team"]
        return None if value == NO_TEAM else self.teams[value]


# --- shared by the two admins: the confirmation page and running a selection ---------------


class ServiceActionsMixin:
    def confirm_page(self, request, *, title, objects=(), action="", form=None, submit, cancel, **context):
        """The page between an action and its work (templates/admin/scoring/team/confirm.html)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "objects": objects,
            "action": action,
            "form": form,
            "submit_label": submit,
            "cancel_label": cancel,
            "cancel_url": reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_changelist"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            **context,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)

    def run_all(self, request, work, items, *, team_ids=(), user_ids=()) -> bool:
        """work(item) for each item in one transaction: the first refusal undoes them all and is the error shown.

        The teams and students the items touch are locked first, in the services' lock order
        (teams.lock_selection): taken one by one as the items go, a member's answer could
        deadlock the action.
        """
        try:
            with transaction.atomic():
                teams.lock_selection(tenant_id=request_tenant_id(request), team_ids=team_ids, user_ids=user_ids)
                for item in items:
                    work(item)
        except ScoringError as refusal:
            self.message_user(request, f"{refusal} Nothing was changed.", messages.ERROR)
            return False
        return True

    def selection(self, request, queryset, what: str):
        """The selected rows (at most AT_ONCE), or None with a message."""
        rows = list(queryset[: AT_ONCE + 1])
        if len(rows) > AT_ONCE:
            self.message_user(request, f"Select at most {AT_ONCE} {what} at once: nothing was done.", messages.WARNING)
            return None
        return rows

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """A refusal of the service that saves the form: its message on the same page, nothing saved."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ScoringError as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return HttpResponseRedirect(self.after_refusal_url(request, object_id))

    def after_refusal_url(self, request, object_id) -> str:
        return request.get_full_path()


# --- teams ---------------------------------------------------------------------------------


@admin.register(Team)
class TeamAdmin(ServiceActionsMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    """The class's teams: add (a name), rename, new invite code, merge, dissolve; members listed on each."""

    list_display = ["name", "members", "points", "rank", "created_at"]
    list_filter = [MembersFilter, ScoredFilter, RoomFilter]
    search_fields = [
        "name",
        "memberships__user__first_name",
        "memberships__user__last_name",
        "memberships__user__email",
    ]
    search_help_text = "Search by team name, or a member’s name or e-mail."
    ordering = ["name"]
    actions = ["merge_selected", "dissolve_selected", "new_codes"]
    readonly_fields = ["invite_code_shown", "members_list", "created_at", "created_by"]
    change_form_template = "admin/scoring/team/change_form.html"
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        return with_standing(super().get_queryset(request))

    def get_fields(self, request, obj=None):
        return ["name"] if obj is None else ["name", *self.readonly_fields]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # dissolved, never deleted: "Dissolve selected teams"
        return actions

    # --- the list's columns

    @admin.display(description="members", ordering="member_count")
    def members(self, team):
        url = reverse(f"{self.admin_site.name}:scoring_teammembership_changelist")
        return format_html(
            '<a href="{}?{}">{}<span class="visually-hidden"> of {}</span></a>',
            url,
            urlencode({"team__id__exact": team.pk}),
            team.member_count,
            team.name,
        )

    @admin.display(description="points", ordering="team_points")
    def points(self, team):
        return team.team_points

    @admin.display(description="rank", ordering=F("team_rank").asc(nulls_last=True))
    def rank(self, team):
        return team.team_rank if team.team_rank is not None else "—"

    # --- a team's page

    @admin.display(description="invite code")
    def invite_code_shown(self, team):
        return teams.display_code(team.invite_code)

    @admin.display(description="members")
    def members_list(self, team):
        memberships = (
            TeamMembership.objects.for_tenant(team.tenant_id)
            .filter(team_id=team.pk)
            .select_related("user")
            .order_by("joined_at", "pk")
        )
        if not memberships:
            return "No members yet: a student joins with the invite code, or you move one in (Team members)."
        items = format_html_join(
            "",
            '<li><a href="{}">{}</a></li>',
            (
                (reverse(f"{self.admin_site.name}:tenants_user_change", args=[m.user_id]), student_label(m.user))
                for m in memberships
            ),
        )
        return format_html('<ul class="team-members">{}</ul>', items)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_new_code"] = obj is not None and self.has_change_permission(request, obj)
        context["can_dissolve"] = obj is not None and self.has_delete_permission(request, obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # --- saving: the services

    def save_model(self, request, obj, form, change):
        actor, name = request.user, form.cleaned_data["name"]
        if change:
            saved = teams.team_rename(team=obj, name=name, actor=actor)
        else:
            saved = teams.team_create_for(tenant=request_tenant(request), name=name, actor=actor)
        obj.pk, obj.name, obj.invite_code = saved.pk, saved.name, saved.invite_code

    def after_refusal_url(self, request, object_id) -> str:
        if object_id is None:  # the add form again, with the name typed
            add = reverse(f"{self.admin_site.name}:scoring_team_add")
            return f"{add}?{urlencode({'name': request.POST.get('name', '')[:200]})}"
        return request.get_full_path()

    # --- the services, as run_all's work

    @staticmethod
    def dissolver(request):
        return lambda team: teams.team_dissolve(team=team, actor=request.user)

    @staticmethod
    def coder(request):
        return lambda team: teams.team_new_code(team=team, actor=request.user)

    # --- views of their own: a new code, dissolving one team (its delete page)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/new-code/",
                self.admin_site.admin_view(self.new_code_view),
                name="scoring_team_new_code",
            ),
            *super().get_urls(),
        ]

    def _team_or_404(self, request, object_id) -> Team:
        team = self.get_object(request, unquote(object_id))  # the class's only: another's is missing
        if team is None:
            raise Http404
        return team

    def new_code_view(self, request, object_id):
        """A GET asks; a POST makes the new code (team_new_code) and goes back to the team's page."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        team = self._team_or_404(request, object_id)
        change_url = reverse(f"{self.admin_site.name}:scoring_team_change", args=[team.pk])
        if request.method == "POST":
            if self.run_all(request, self.coder(request), [team]):
                fresh = Team.objects.for_tenant(team.tenant_id).get(pk=team.pk)
                self.message_user(
                    request,
                    f"{team.name}’s new invite code is {teams.display_code(fresh.invite_code)}: "
                    "the old one no longer works.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(change_url)
        return self.confirm_page(
            request,
            title=f"New invite code for {team.name}",
            team=team,
            intro=[f"{team.name}’s invite code is {teams.display_code(team.invite_code)} now."],
            outcome=[
                "A new code replaces it: a student who has the old one can no longer join. The members stay.",
            ],
            submit="Make a new code",
            cancel="Keep the code",
            cancel_url=change_url,
        )

    def delete_view(self, request, object_id, extra_context=None):
        """A team's delete page dissolves it (team_dissolve): the same words and work as the action."""
        if not self.has_delete_permission(request):
            raise PermissionDenied
        team = self._team_or_404(request, object_id)
        if request.method == "POST":
            if self.run_all(request, self.dissolver(request), [team]):
                self.message_user(request, f"Dissolved {team.name}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse(f"{self.admin_site.name}:scoring_team_changelist"))
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:scoring_team_change", args=[team.pk]))
        return self.dissolve_page(request, [team], single=True)

    # --- the list's actions

    @admin.action(description="Merge selected teams into…", permissions=["change"])
    def merge_selected(self, request, queryset):
        chosen = self.selection(request, queryset.order_by("name", "pk"), "teams")
        if chosen is None:
            return None
        form = MergeForm(
            request.POST if request.POST.get("post") == "yes" else None,
            teams_of_class=class_teams(request),
        )
        if form.is_valid():
            into = form.cleaned_data["into"]
            sources = [team for team in chosen if team.pk != into.pk]
            if not sources:
                self.message_user(request, "Select the teams to merge besides the one they go into.", messages.ERROR)
                return None

            def merge(source):
                teams.team_merge(source=source, into=into, actor=request.user)

            selected = [team.pk for team in sources] + [into.pk]
            if self.run_all(request, merge, sources, team_ids=selected):
                names = ", ".join(team.name for team in sources)
                self.message_user(request, f"Merged {names} into {into.name}.", messages.SUCCESS)
            return None
        size = request_tenant(request).team_size_max
        return self.confirm_page(
            request,
            title=f"Merge {plural(len(chosen), 'team')}",
            objects=chosen,
            items=[f"{team.name}: {plural(team.member_count, 'member')}" for team in chosen],
            action="merge_selected",
            form=form,
            intro=["These teams are merged into the one you choose:"],
            outcome=[
                "Their members, answers and hint unlocks go to it, and the other teams are gone. The merged team "
                "scores each challenge once, from the first solve of any of them.",
                f"A team of this class has at most {plural(size, 'member')}: the merged team must fit "
                "(raise the team size in the class settings first to merge larger teams).",
            ],
            submit="Merge",
            danger=True,
            cancel="Keep them apart",
        )

    @admin.action(description="Dissolve selected teams", permissions=["delete"])
    def dissolve_selected(self, request, queryset):
        chosen = self.selection(request, queryset.order_by("name", "pk"), "teams")
        if chosen is None:
            return None
        if request.POST.get("post") == "yes":
            if self.run_all(request, self.dissolver(request), chosen, team_ids=[t.pk for t in chosen]):
                self.message_user(request, f"Dissolved {', '.join(t.name for t in chosen)}.", messages.SUCCESS)
            return None
        return self.dissolve_page(request, chosen)

    def dissolve_page(self, request, chosen, single=False):
        team = chosen[0] if single else None
        return self.confirm_page(
            request,
            title=f"Dissolve {team.name}" if single else f"Dissolve {plural(len(chosen), 'team')}",
            objects=chosen,
            team=team,
            items=[f"{t.name}: {plural(t.member_count, 'member')}, {plural(t.team_points, 'point')}" for t in chosen],
            action="" if single else "dissolve_selected",
            intro=["These teams are dissolved:" if len(chosen) != 1 else "This team is dissolved:"],
            outcome=[
                "Their members leave and are in no team; they may join or create another.",
                "Each team’s row leaves the team standings. The students keep their own points; the teams’ "
                "answers and hint unlocks count for no team.",
            ],
            submit="Dissolve",
            danger=True,
            cancel="Keep them" if len(chosen) != 1 else "Keep it",
        )

    @admin.action(description="New invite code", permissions=["change"])
    def new_codes(self, request, queryset):
        chosen = self.selection(request, queryset.order_by("name", "pk"), "teams")
        if chosen and self.run_all(request, self.coder(request), chosen, team_ids=[t.pk for t in chosen]):
            self.message_user(
                request,
                f"New invite codes for {', '.join(t.name for t in chosen)}: the old ones no longer work."
                if len(chosen) != 1
                else f"New invite code for {chosen[0].name}: the old one no longer works.",
                messages.SUCCESS,
            )


# --- who is in which team ------------------------------------------------------------------


class StudentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return student_label(obj)


@admin.register(TeamMembership)
class TeamMembershipAdmin(ServiceActionsMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    """Students in teams: "Move to team…" (or out of any); adding one puts a student in no team into a team."""

    list_display = ["student", "email", "team_link", "joined_at"]
    list_display_links = ["student"]
    list_filter = [("team", TenantTeamFilter)]
    list_select_related = ["user", "team"]
    search_fields = ["user__first_name", "user__last_name", "user__email", "team__name"]
    search_help_text = "Search by student name or e-mail, or team name."
    ordering = ["team__name", "user__last_name", "user__first_name"]
    fields = ["user", "team"]
    actions = ["move_selected"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "team")

    def get_fields(self, request, obj=None):
        return ["user", "team"] if obj is None else ["student", "email", "team_link", "joined_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["student", "email", "team_link", "joined_at"]

    def has_delete_permission(self, request, obj=None):
        return False  # "Move to team…" → "No team": a student leaves through the service

    @admin.display(description="student", ordering="user__last_name")
    def student(self, membership):
        return membership.user.get_full_name()

    @admin.display(description="e-mail", ordering="user__email")
    def email(self, membership):
        return membership.user.email

    @admin.display(description="team", ordering="team__name")
    def team_link(self, membership):
        url = reverse(f"{self.admin_site.name}:scoring_team_change", args=[membership.team_id])
        return format_html('<a href="{}">{}</a>', url, membership.team.name)

    # --- adding: a student in no team into a team

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["form_class"] = StudentChoiceField
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)  # the class's rows only
        if db_field.name == "user":
            field.queryset = (
                field.queryset.students()
                .filter(team_memberships__isnull=True)
                .order_by("last_name", "first_name", "email", "pk")
            )
            field.label = "Student"
            field.help_text = "Students in no team. To move a student from one team to another: “Move to team…”."
        elif db_field.name == "team":
            field.queryset = field.queryset.order_by("name", "pk")
            field.label_from_instance = lambda team: team.name
        return field

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and isinstance(field.widget, RelatedFieldWidgetWrapper):
            field.widget = field.widget.widget  # no "add a user" or "add a team" from here
        return field

    def save_model(self, request, obj, form, change):
        if change:  # pragma: no cover (the page is read-only)
            raise PermissionDenied
        teams.team_move(user=obj.user, team=obj.team, actor=request.user)
        obj.pk = (
            TeamMembership.objects.for_tenant(obj.team.tenant_id)
            .filter(user_id=obj.user_id)
            .values_list("pk", flat=True)
            .get()
        )

    def after_refusal_url(self, request, object_id) -> str:
        add = reverse(f"{self.admin_site.name}:scoring_teammembership_add")
        kept = {key: request.POST.get(key, "")[:20] for key in ("user", "team")}
        return f"{add}?{urlencode(kept)}"

    def has_change_permission(self, request, obj=None):
        # the actions need it; a membership's own page is read-only (it changes by "Move to team…")
        return obj is None and super().has_change_permission(request)

    # --- moving

    @admin.action(description="Move to team…", permissions=["change"])
    def move_selected(self, request, queryset):
        chosen = self.selection(request, queryset.order_by("user__last_name", "user__first_name", "pk"), "students")
        if chosen is None:
            return None
        form = MoveForm(
            request.POST if request.POST.get("post") == "yes" else None,
            teams_of_class=class_teams(request),
        )
        if form.is_valid():
            team = form.chosen()

            def move(membership):
                teams.team_move(user=membership.user, team=team, actor=request.user)

            if self.run_all(
                request,
                move,
                chosen,
                team_ids=[m.team_id for m in chosen] + [team.pk if team is not None else None],
                user_ids=[m.user_id for m in chosen],
            ):
                where = team.name if team is not None else "no team"
                names = ", ".join(m.user.get_full_name() for m in chosen)
                self.message_user(request, f"Moved {names} to {where}.", messages.SUCCESS)
            return None
        return self.confirm_page(
            request,
            title=f"Move {plural(len(chosen), 'student')}",
            objects=chosen,
            items=[f"{student_label(m.user)}, in {m.team.name}" for m in chosen],
            action="move_selected",
            form=form,
            intro=["These students move to the team you choose:"],
            outcome=[
                "The answers they gave so far keep counting for the team they were in when they gave them.",
            ],
            submit="Move",
            cancel="Leave them",
        )


# --- the team standings --------------------------------------------------------------------


@admin.register(TeamLeaderboard)
class TeamLeaderboardAdmin(ReadOnlyAdminMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    """The team standings as the students see them live (read-only: kept by the services and the database)."""

    list_display = ["rank", "team", "points", "solves", "last_scored_at"]
    list_select_related = ["team"]
    search_fields = ["team__name"]
    search_help_text = "Search by team name."
    ordering = ["-points", "last_scored_at", "team_id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
