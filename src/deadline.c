/* Deadlines: the one place that turns a caller's timeout into an absolute
 * mproc__plat_now() time and back.  Every timed call in the library goes
 * through these, so "forever" means the same everywhere: a negative timeout
 * (Python's None) or one so large (over ~31 years) that adding it to the
 * clock would lose precision or reach infinity. */
#include "internal.h"

double mproc__deadline(double timeout) {
  if (timeout < 0 || timeout > 1e9)
    return -1.0;
  return mproc__plat_now() + timeout;
}

int mproc__expired(double deadline, double now) {
  return deadline >= 0 && now >= deadline;
}

double mproc__remaining(double deadline) {
  double left;
  if (deadline < 0)
    return -1.0;
  left = deadline - mproc__plat_now();
  return left > 0 ? left : 0.0;
}

double mproc__sleep_until(double deadline, double now, double slice) {
  double t = now + slice;
  return deadline >= 0 && deadline < t ? deadline : t;
}
