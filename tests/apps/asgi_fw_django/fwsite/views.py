import asyncio
import threading

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse


async def hello(request):
    await asyncio.sleep(0)
    return JsonResponse({"path": request.path, "path_info": request.path_info,
                         "script_name": request.META.get("SCRIPT_NAME"),
                         "method": request.method, "async": True})


async def echo(request):
    return HttpResponse(b"got:" + request.body, content_type="application/octet-stream")


async def stream(request):
    async def parts():
        for i in range(3):
            await asyncio.sleep(0)
            yield b"d%d;" % i
    return StreamingHttpResponse(parts(), content_type="text/plain")


def sync_view(request):  # Django runs it in a thread (sync_to_async)
    return JsonResponse({"thread": threading.current_thread().name != "MainThread"})
