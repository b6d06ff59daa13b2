from django.shortcuts import render

from portal.roles import team_required


@team_required()
def registry_list(request):
    return render(request, "registries/list.html", {"nav": "registries"})
