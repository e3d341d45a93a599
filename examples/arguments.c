/* arguments.c: positional and keyword arguments (Python's args and kwargs).
 *
 * Python:
 *     Process(target=report, args=(42, 3.25, 'hello', b'\x00\x01\xfe'),
 *             kwargs={'retries': 3, 'ratio': 0.1, 'mode': 'fast'})
 *
 * An mproc_args list holds typed values: int (int64_t), double, string,
 * bytes, and OS handles.  A NULL key adds a positional argument, any other
 * key a keyword argument.  mproc_process_create() copies the list, and the
 * child gets the same values (doubles bit for bit) under fork and spawn.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

/* Print every positional argument, whatever its type. */
static int print_positional(const mproc_args *args) {
  size_t i, j, n = mproc_args_count(args);
  for (i = 0; i < n; i++) {
    int64_t iv;
    double dv;
    const char *sv;
    const void *data;
    size_t len;
    int rc;
    printf("  args[%u] = ", (unsigned)i);
    switch (mproc_arg_type(args, i)) {
    case MPROC_ARG_INT:
      if ((rc = mproc_arg_int(args, i, &iv)) == 0)
        printf("%" PRId64 " (int)\n", iv);
      break;
    case MPROC_ARG_DOUBLE:
      if ((rc = mproc_arg_double(args, i, &dv)) == 0)
        printf("%g (double)\n", dv);
      break;
    case MPROC_ARG_STR:
      if ((rc = mproc_arg_str(args, i, &sv)) == 0)
        printf("\"%s\" (string)\n", sv);
      break;
    case MPROC_ARG_BYTES:
      if ((rc = mproc_arg_bytes(args, i, &data, &len)) == 0) {
        for (j = 0; j < len; j++)
          printf("%02x ", ((const unsigned char *)data)[j]);
        printf("(%u bytes)\n", (unsigned)len);
      }
      break;
    default: /* a handle, or a negative error code */
      rc = MPROC_ETYPE;
      break;
    }
    if (rc < 0) {
      fprintf(stderr, "args[%u]: %s\n", (unsigned)i, mproc_strerror(rc));
      return 1;
    }
  }
  return 0;
}

/* The entry: reads its arguments back.  Strings and bytes point into
 * `args`, valid until the entry returns. */
static int report(const mproc_args *args) {
  int64_t retries = 0, verbose = 0;
  double ratio = 0;
  const char *mode = NULL, *key;
  size_t i;
  int rc;

  printf("child %s got %u positional and %u keyword arguments\n",
         mproc_process_name(mproc_current_process()),
         (unsigned)mproc_args_count(args), (unsigned)mproc_kwargs_count(args));
  if (print_positional(args) != 0)
    return 1;

  /* Keywords in the order they were added... */
  for (i = 0; i < mproc_kwargs_count(args); i++)
    if (mproc_kwarg_key(args, i, &key) == 0)
      printf("  kwargs has \"%s\"\n", key);

  /* ...or read by key, with the type the entry expects. */
  if ((rc = mproc_kwarg_int(args, "retries", &retries)) < 0 ||
      (rc = mproc_kwarg_double(args, "ratio", &ratio)) < 0 ||
      (rc = mproc_kwarg_str(args, "mode", &mode)) < 0) {
    fprintf(stderr, "report: %s\n", mproc_strerror(rc));
    return 1;
  }
  printf("  retries=%" PRId64 " ratio=%g mode=%s\n", retries, ratio, mode);

  /* An optional keyword: MPROC_ENOTFOUND means "not given". */
  rc = mproc_kwarg_int(args, "verbose", &verbose);
  if (rc == MPROC_ENOTFOUND)
    printf("  verbose: not given, default 0\n");
  else if (rc < 0)
    printf("  verbose: %s\n", mproc_strerror(rc));
  else
    printf("  verbose=%" PRId64 "\n", verbose);
  /* Asking for the wrong type is an error, not a conversion. */
  rc = mproc_kwarg_int(args, "mode", &verbose);
  printf("  \"mode\" read as an int: %s\n", mproc_err_name(rc));
  fflush(stdout);
  return 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(report), MPROC_ENTRY_END};

int main(int argc, char **argv) {
  static const unsigned char blob[] = {0x00, 0x01, 0xfe};
  mproc_args *args = NULL;
  mproc_process *p = NULL;
  int rc, code = -1;

  rc = mproc_main(argc, argv, entries);
  if (rc < 0) {
    fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 1;
  }

  if ((rc = mproc_args_create(&args)) < 0 ||
      /* positional: key NULL */
      (rc = mproc_args_add_int(args, NULL, 42)) < 0 ||
      (rc = mproc_args_add_double(args, NULL, 3.25)) < 0 ||
      (rc = mproc_args_add_str(args, NULL, "hello")) < 0 ||
      (rc = mproc_args_add_bytes(args, NULL, blob, sizeof blob)) < 0 ||
      /* keyword */
      (rc = mproc_args_add_int(args, "retries", 3)) < 0 ||
      (rc = mproc_args_add_double(args, "ratio", 0.1)) < 0 ||
      (rc = mproc_args_add_str(args, "mode", "fast")) < 0 ||
      (rc = mproc_process_create(&p, "report", args, NULL)) < 0 ||
      (rc = mproc_process_start(p)) < 0 ||
      (rc = mproc_process_join(p, MPROC_FOREVER)) < 0 ||
      (rc = mproc_process_exitcode(p, &code)) < 0) {
    fprintf(stderr, "arguments: %s\n", mproc_strerror(rc));
    return 1;
  }
  printf("main: the child ended with exit code %d\n", code);
  mproc_args_free(args);
  mproc_process_free(p);
  return code == 0 ? 0 : 1;
}
