"""One router per resource."""

from viewer.routers import bim, bookmarks, jobs, layers, meshes, rasters, results, scenarios, scene, sensors, tiles

ROUTERS = [scene.router, layers.router, tiles.router, rasters.router, results.router, meshes.router,
           scenarios.router, jobs.router, bim.router, sensors.router,
           bookmarks.router]

__all__ = ["ROUTERS"]
