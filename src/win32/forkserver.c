/* Windows backend, the forkserver start method: Windows has no fork, so
 * there is no forkserver either (plat/forkserver.h); every entry point
 * reports MPROC_ENOTSUP, as the fork method does. */
#include "internal.h"

int mproc__plat_fs_start(struct mproc_process *p, const mproc_handle_t *handles,
                         size_t nhandles, mproc__bootstrap_builder build) {
  (void)p;
  (void)handles;
  (void)nhandles;
  (void)build;
  return MPROC_ENOTSUP;
}

const mproc_entry *mproc__plat_fs_entry(void) { return NULL; }

int mproc__plat_fs_preload(const char *entry) {
  (void)entry;
  return MPROC_ENOTSUP;
}

double mproc__fs_reply_timeout = 30.0;

int64_t mproc__fs_server_pid(void) { return 0; }
