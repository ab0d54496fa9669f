/* Run a program as if the CPU had AVX2 but no AVX-512, VNNI or AMX, at native speed.
 *
 * Loaded with LD_PRELOAD (tools/avx2-only builds it and runs the command), it turns on
 * Linux's CPUID faulting for the process (arch_prctl ARCH_SET_CPUID, inherited by its
 * threads), so every CPUID instruction traps; the SIGSEGV handler runs the real CPUID and
 * clears the AVX-512, VNNI, AVX-VNNI, bf16 and AMX bits before the program sees them. ONNX
 * Runtime, numpy, OpenCV and PyTorch then pick the AVX2 kernels an AVX2-only CPU runs. The
 * instructions still run on this CPU's cores, so timings are those of its AVX2 units, not of
 * another CPU. Needs a CPU and kernel with CPUID faulting ("cpuid_fault" in /proc/cpuinfo);
 * without it the program is not started (exit status 70).
 *
 * The program may install its own SIGSEGV handler (Python's faulthandler does): sigaction
 * and signal are wrapped so that the CPUID handler stays in place and passes other faults on.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif
#define BIT(n) (1u << (n))

static struct sigaction app_handler; /* what the program asked for SIGSEGV */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void mask(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512 F, DQ, IFMA, PF, ER, CD, BW, VL */
        *b &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
        /* ECX: AVX512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ */
        *c &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
        /* EDX: AVX512 4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, AVX512-FP16, AMX-TILE, AMX-INT8 */
        *d &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    } else if (leaf == 7 && sub == 1) {
        *a &= ~(BIT(4) | BIT(5) | BIT(23)); /* AVX-VNNI, AVX512-BF16, AVX-IFMA */
        *d &= ~(BIT(4) | BIT(5) | BIT(10)); /* AVX-VNNI-INT8, AVX-NE-CONVERT, AVX-VNNI-INT16 */
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *r = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (ip[0] == 0x0f && ip[1] == 0xa2) { /* CPUID */
        unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX], a, b, c, d;
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1); /* this thread only, for one instruction */
        __cpuid_count(leaf, sub, a, b, c, d);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        mask(leaf, sub, &a, &b, &c, &d);
        r[REG_RAX] = a, r[REG_RBX] = b, r[REG_RCX] = c, r[REG_RDX] = d;
        r[REG_RIP] += 2;
        return;
    }
    if ((app_handler.sa_flags & SA_SIGINFO) && app_handler.sa_sigaction) {
        app_handler.sa_sigaction(sig, info, context);
    } else if (app_handler.sa_handler != SIG_DFL && app_handler.sa_handler != SIG_IGN) {
        app_handler.sa_handler(sig);
    } else { /* no handler of the program's: the fault kills it as it would have */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        real_sigaction(SIGSEGV, &dfl, NULL);
    }
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction) real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV) return real_sigaction(sig, act, old);
    if (old) *old = app_handler;
    if (act) app_handler = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    return sigaction(sig, &act, &old) ? SIG_ERR : old.sa_handler;
}

__attribute__((constructor)) static void start(void) {
    struct sigaction act;
    real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_segv;
    act.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&act.sa_mask);
    real_sigaction(SIGSEGV, &act, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        perror("avx2-only: this CPU or kernel has no CPUID faulting (arch_prctl ARCH_SET_CPUID)");
        _exit(70);
    }
}
