// A test-only LD_PRELOAD companion of libfaketime for the clock-skew fault
// test (F7). libfaketime skews what a process reads from the clock, but not
// the kernel's: an absolute CLOCK_REALTIME deadline that the process computes
// from its skewed clock and hands to futex() (as Abseil's timed waits do:
// Mutex::AwaitWithTimeout, Notification::WaitForNotificationWithTimeout)
// is then off by the skew: with +5m every such wait lasts 5 minutes longer,
// with -5m it returns at once. A host whose clock is really 5 minutes off
// has its kernel clock off too, so this shim moves those deadlines back by
// the skew (libfaketime's clock minus the kernel's), which makes the whole
// process live consistently 5 minutes away, as on such a host.
//
// Load after libfaketime: LD_PRELOAD="libfaketimeMT.so.1 libfutex_skew_shim.so".
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <time.h>

typedef long (*syscall_fn)(long, ...);

static long next_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6) {
  static syscall_fn next = 0;
  if (next == 0) next = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
  return next(n, a1, a2, a3, a4, a5, a6);
}

long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a1 = va_arg(ap, long);
  long a2 = va_arg(ap, long);
  long a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long);
  long a5 = va_arg(ap, long);
  long a6 = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_futex && a4 != 0) {
    const int op = (int)a2;
    const int cmd = op & FUTEX_CMD_MASK;
    if ((op & FUTEX_CLOCK_REALTIME) != 0 &&
        (cmd == FUTEX_WAIT_BITSET || cmd == FUTEX_WAIT_REQUEUE_PI)) {
      struct timespec skewed, kernel;
      clock_gettime(CLOCK_REALTIME, &skewed);  // libfaketime's clock
      next_syscall(SYS_clock_gettime, CLOCK_REALTIME, (long)&kernel, 0, 0, 0, 0);
      const long long skew = (long long)(skewed.tv_sec - kernel.tv_sec) * 1000000000LL +
                             (skewed.tv_nsec - kernel.tv_nsec);
      const struct timespec* deadline = (const struct timespec*)a4;
      long long ns = (long long)deadline->tv_sec * 1000000000LL + deadline->tv_nsec - skew;
      if (ns < 0) ns = 0;
      struct timespec moved = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
      return next_syscall(number, a1, a2, a3, (long)&moved, a5, a6);
    }
  }
  return next_syscall(number, a1, a2, a3, a4, a5, a6);
}
