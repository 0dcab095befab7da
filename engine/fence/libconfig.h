/* engine/fence/libconfig.h: the engine (engine/) is pure computation on buffers and
 * is compiled with this folder first on its include path, so that reaching
 * for <libconfig.h> from it stops the build here. Put the code that needs it in the
 * layer that owns that library (README, "The layers"). */
#error "<libconfig.h> included from engine/: the engine builds without it; move this code up a layer"
