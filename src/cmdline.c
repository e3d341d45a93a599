/* Quoting one argument for a Windows command line.
 *
 * A Windows child receives one string and splits it itself; the C runtime
 * and CommandLineToArgvW follow the documented rules ("Parsing C++
 * command-line arguments"): inside quotes, 2n backslashes before a quote
 * are n backslashes and the quote ends the argument; 2n+1 are n backslashes
 * and a literal quote; backslashes not followed by a quote are literal.  So
 * backslashes are doubled only where a quote follows them, including the
 * closing quote we add: "C:\dir\" would otherwise swallow its own end. */
#include <string.h>

#include "internal.h"

static void mproc__put(char *out, size_t cap, size_t *n, char c) {
  if (*n + 1 < cap)
    out[*n] = c;
  (*n)++;
}

size_t mproc__quote_arg(const char *arg, char *out, size_t cap) {
  size_t n = 0, slashes, i;
  const char *p;
  if (arg[0] != 0 && strpbrk(arg, " \t\n\v\"") == NULL) {
    for (p = arg; *p; p++)
      mproc__put(out, cap, &n, *p);
  } else {
    mproc__put(out, cap, &n, '"');
    for (p = arg;; p++) {
      slashes = 0;
      while (*p == '\\') {
        slashes++;
        p++;
      }
      if (*p == 0) {
        for (i = 0; i < slashes * 2; i++)
          mproc__put(out, cap, &n, '\\');
        break;
      }
      if (*p == '"') {
        for (i = 0; i < slashes * 2 + 1; i++)
          mproc__put(out, cap, &n, '\\');
      } else {
        for (i = 0; i < slashes; i++)
          mproc__put(out, cap, &n, '\\');
      }
      mproc__put(out, cap, &n, *p);
    }
    mproc__put(out, cap, &n, '"');
  }
  if (cap)
    out[n < cap ? n : cap - 1] = 0;
  return n;
}
