from django.shortcuts import render

from .roles import team_required


@team_required("can_manage_team")
def team(request):
    return render(request, "portal/team.html", {"nav": "team"})


@team_required("can_read_audit")
def audit(request):
    return render(request, "portal/audit.html", {"nav": "audit"})
