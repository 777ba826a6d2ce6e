/* A TFLite external delegate double: records the options and environment it receives (to the
 * file in FAKE_DELEGATE_RECORD) and refuses when given option fail / fail_prepare. Built by the tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* TfLiteDelegate as in tensorflow/lite/core/c/common.h; a delegate whose Prepare claims no node. */
typedef struct TfLiteDelegate {
  void* data_;
  int (*Prepare)(void* context, struct TfLiteDelegate* delegate);
  void* CopyFromBufferHandle; void* CopyToBufferHandle; void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;
static int prepare_ok(void* c, TfLiteDelegate* d) { (void)c; (void)d; return 0; }
static int prepare_fail(void* c, TfLiteDelegate* d) { (void)c; (void)d; return 1; }
static void record(const char* line) {
  const char* path = getenv("FAKE_DELEGATE_RECORD");
  FILE* f = path ? fopen(path, "a") : NULL;
  if (f) { fputs(line, f); fputc('\n', f); fclose(f); }
}
TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, int n, void (*report)(const char*)) {
  char line[1024];
  int fail = 0, fail_prepare = 0;
  for (int i = 0; i < n; i++) {
    snprintf(line, sizeof line, "option %s=%s", keys[i], values[i]);
    record(line);
    if (!strcmp(keys[i], "fail")) fail = 1;
    if (!strcmp(keys[i], "fail_prepare")) fail_prepare = 1;
  }
  const char* cache = getenv("FAKE_CACHE_DIR");
  const char* flag = getenv("FAKE_PLAIN_ENV");
  snprintf(line, sizeof line, "env FAKE_CACHE_DIR=%s FAKE_PLAIN_ENV=%s", cache ? cache : "", flag ? flag : "");
  record(line);
  if (fail) { report("the fake delegate was told to fail"); return NULL; }
  TfLiteDelegate* d = calloc(1, sizeof(TfLiteDelegate) + 64);
  d->Prepare = fail_prepare ? prepare_fail : prepare_ok;
  return d;
}
void tflite_plugin_destroy_delegate(TfLiteDelegate* d) { if (d) record("destroyed"); free(d); }
