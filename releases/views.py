from django.shortcuts import render

from portal.roles import team_required

from .models import App


@team_required()
def app_list(request):
    apps = App.objects.filter(team=request.team, archived_at__isnull=True)
    return render(request, "releases/app_list.html", {"nav": "apps", "apps": apps})


@team_required()
def customer_list(request):
    return render(request, "releases/customer_list.html", {"nav": "customers"})
