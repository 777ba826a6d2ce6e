/* A stand-in for NXP's libg2d.so.2 with the same ABI, for tests: it records every call and every
 * g2d_surface field it receives, and "blits" a known pattern into an RGBA destination whose
 * physical address is really a pointer into the test's memory. Build with -DLEGACY_PLANES for the
 * pre-6.4.11 layout (int planes, 60-byte surface). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef LEGACY_PLANES
typedef int plane_t;
static const char version_text[] = "\n\0$VERSION$6.4.3:398061:0123456789$\n";
#else
typedef unsigned long plane_t;
static const char version_text[] = "\n\0$VERSION$6.4.11:1049711:0123456789$\n";
#endif

struct g2d_surface {
    int format;
    plane_t planes[3];
    int left, top, right, bottom;
    int stride, width, height;
    int blendfunc, global_alpha, clrcolor, rot;
};

const char *_G2D_VERSION = version_text;

#define HANDLE ((void *)0x6d2d)
static char call_log[1 << 16];
static size_t log_length;
static int fail_open, draw = 1;

static void record(const char *format, ...) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(call_log + log_length, sizeof(call_log) - log_length, format, args);
    va_end(args);
    if (n > 0 && log_length + n + 1 < sizeof(call_log)) {
        log_length += n;
        call_log[log_length++] = '\n';
        call_log[log_length] = 0;
    }
}

const char *fake_log(void) { return call_log; }
void fake_reset(void) { log_length = 0; call_log[0] = 0; }
void fake_fail_open(int fail) { fail_open = fail; }
void fake_draw(int enabled) { draw = enabled; }
int fake_surface_size(void) { return (int)sizeof(struct g2d_surface); }

static const char *which(void *handle) { return handle == HANDLE ? "" : " BAD-HANDLE"; }

int g2d_open(void **handle) {
    record("open");
    if (fail_open) { *handle = 0; return -1; }
    *handle = HANDLE;
    return 0;
}
int g2d_close(void *handle) { record("close%s", which(handle)); return 0; }
int g2d_enable(void *handle, int cap) { record("enable %d%s", cap, which(handle)); return 0; }
int g2d_disable(void *handle, int cap) { record("disable %d%s", cap, which(handle)); return 0; }
int g2d_finish(void *handle) { record("finish%s", which(handle)); return 0; }

static void record_surface(const char *name, const struct g2d_surface *s) {
    record("%s format=%d planes=%lu,%lu,%lu rect=%d,%d,%d,%d stride=%d size=%dx%d blend=%d alpha=%d clear=%d rot=%d",
           name, s->format, (unsigned long)s->planes[0], (unsigned long)s->planes[1], (unsigned long)s->planes[2],
           s->left, s->top, s->right, s->bottom, s->stride, s->width, s->height, s->blendfunc, s->global_alpha,
           s->clrcolor, s->rot);
}

int g2d_blit(void *handle, struct g2d_surface *src, struct g2d_surface *dst) {
    record("blit%s", which(handle));
    record_surface("src", src);
    record_surface("dst", dst);
    if (draw && dst->format == 1) {
        uint8_t *base = (uint8_t *)(uintptr_t)dst->planes[0];
        for (int y = dst->top; y < dst->bottom; y++)
            for (int x = dst->left; x < dst->right; x++) {
                uint8_t *p = base + ((size_t)y * dst->stride + x) * 4;
                p[0] = (uint8_t)x; p[1] = (uint8_t)y; p[2] = (uint8_t)(x + y); p[3] = 255;
            }
    }
    return 0;
}
