/*
 * cpu.c -- which ISA paths can run here (CPU feature detection at run time).
 *
 * The default build never uses -march=native: the AVX2 and AVX-512 functions
 * carry their own target attributes and are only called after the checks
 * below. Compiling with -DREFCOMP_NO_SIMD keeps only the scalar path.
 */
#include "internal.h"

int refcomp_isa_supported(int isa) {
    switch (isa) {
    case REFCOMP_ISA_AUTO:
    case REFCOMP_ISA_SCALAR:
        return 1;
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    case REFCOMP_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case REFCOMP_ISA_AVX512VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
    default:
        return 0;
    }
}

int refcomp_isa_best(void) {
    if (refcomp_isa_supported(REFCOMP_ISA_AVX512VNNI)) return REFCOMP_ISA_AVX512VNNI;
    if (refcomp_isa_supported(REFCOMP_ISA_AVX2)) return REFCOMP_ISA_AVX2;
    return REFCOMP_ISA_SCALAR;
}

const char *refcomp_isa_name(int isa) {
    switch (isa) {
    case REFCOMP_ISA_AUTO: return "auto";
    case REFCOMP_ISA_SCALAR: return "scalar";
    case REFCOMP_ISA_AVX2: return "avx2";
    case REFCOMP_ISA_AVX512VNNI: return "avx512vnni";
    default: return "unknown";
    }
}

int refcomp__resolve_isa(int isa) {
    if (isa == REFCOMP_ISA_AUTO) return refcomp_isa_best();
    return refcomp_isa_supported(isa) ? isa : REFCOMP_EISA;
}
