"""Defines neither `application` nor `app`."""


async def handler(scope, receive, send):
    pass
