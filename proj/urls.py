from django.contrib import admin
from django.urls import include, path

from collector.admin_coverage import console_urls
from collector.admin_runs import completeness_urls
from collector.metrics import metrics_view

urlpatterns = [
    # Before admin.site.urls: its catch-all would answer 404 for pages it does not know.
    path("admin/", include(completeness_urls())),
    path("admin/", include(console_urls())),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
]
