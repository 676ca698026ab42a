"""Domain events of scoring, sent by the services with the actor in hand.

The audit app turns each into an event_store row whose payload is enough to
rebuild points, badges and leaderboards from the events alone.
"""

from django.dispatch import Signal

# submission, actor
submission_created = Signal()
# submission, previous (dict: status, score, points_awarded before this grading), actor
submission_graded = Signal()
# user_badge, actor (None: awarded by a rule)
badge_awarded = Signal()
# user_badge (already deleted, its fields still set), actor, reason
badge_revoked = Signal()
# project (deleted, its fields still set), solvers (ids of the students who had solved it), actor
project_deleted = Signal()
# project, previous_points, rescored (approved submissions scored again), actor
project_rescored = Signal()
# user (a deleted student, their fields still set), actor
student_deleted = Signal()
# unlock (a HintUnlock), actor
hint_unlocked = Signal()
# submission (a pending write-up, edited by its author), previous (dict: answer, link before the edit), actor
writeup_edited = Signal()

# team, actor, details (dict): one signal per team event (scoring.teams), recorded under its name
TEAM_EVENTS = {
    name: Signal()
    for name in (
        "TeamCreated",
        "TeamJoined",
        "TeamLeft",
        "TeamRenamed",
        "TeamCodeChanged",
        "TeamMerged",
        "TeamDissolved",
    )
}
