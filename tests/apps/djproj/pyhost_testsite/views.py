from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def hello(request):
    return HttpResponse("hello from django path=%s" % request.path, content_type="text/plain")


@csrf_exempt
def echo(request):
    return JsonResponse({
        "method": request.method,
        "body": request.body.decode("utf-8"),
        "form": request.POST.dict(),
        "script_name": request.META.get("SCRIPT_NAME"),
        "path": request.path,
    })


def protected(request):
    # Not exempt: a POST without a CSRF token gets Django's 403.
    return HttpResponse("should not get here")
