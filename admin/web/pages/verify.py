"""The public check of a certificate of service hours: /verify/<code> (the QR code on the PDF
points here). Anyone may open it, signed in or not; it shows the name, the period and the total
and nothing else, so a code found on paper reveals no more than the paper does."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import Ctx, page
from storage.certificates import find_certificate


@page(roles=None)
async def verify(ctx: Ctx) -> Response:
    code = str(ctx.request.path_params["code"])[:64]
    cert = await find_certificate(ctx.db, code)
    if cert is None:
        return await ctx.render("verify.html", http_status=404, cert=None, code=code)
    return await ctx.render("verify.html", cert=cert, code=cert.code, hours=f"{cert.minutes / 60:.1f}")


routes = [Route("/verify/{code}", verify, methods=["GET"])]
