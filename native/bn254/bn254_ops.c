/* The building blocks behind bn254.h's bn254_op_* functions, for differential tests. */
#include <stdlib.h>

#include "bn254.h"
#include "bn254_encoding.h"
#include "bn254_pairing.h"

static int op_fp(int op, uint8_t *out, const uint8_t *a_bytes, const uint8_t *b_bytes) {
    fp_t a, b, r;
    if (!fp_from_bytes(&a, a_bytes) || !fp_from_bytes(&b, b_bytes)) return 0;
    switch (op) {
        case BN254_OP_ADD: fp_add(&r, &a, &b); break;
        case BN254_OP_SUB: fp_sub(&r, &a, &b); break;
        case BN254_OP_MUL: fp_mul(&r, &a, &b); break;
        case BN254_OP_SQUARE: fp_square(&r, &a); break;
        case BN254_OP_INVERSE: fp_inverse(&r, &a); break;
        case BN254_OP_MUL_BY_SMALL: fp_mul_small(&r, &a, b_bytes[31] % 17u); break;
        default: return 0;
    }
    fp_to_bytes(out, &r);
    return 1;
}

static int op_fp2(int op, uint8_t *out, const uint8_t *a_bytes, const uint8_t *b_bytes) {
    fp2_t a, b, r;
    if (!load_fp2(&a, a_bytes) || !load_fp2(&b, b_bytes)) return 0;
    switch (op) {
        case BN254_OP_ADD: fp2_add(&r, &a, &b); break;
        case BN254_OP_SUB: fp2_sub(&r, &a, &b); break;
        case BN254_OP_MUL: fp2_mul(&r, &a, &b); break;
        case BN254_OP_SQUARE: fp2_square(&r, &a); break;
        case BN254_OP_INVERSE: fp2_inverse(&r, &a); break;
        case BN254_OP_MUL_BY_XI: fp2_mul_by_xi(&r, &a); break;
        default: return 0;
    }
    store_fp2(out, &r);
    return 1;
}

static int op_fp12(int op, uint8_t *out, const uint8_t *a_bytes, const uint8_t *b_bytes) {
    fp12_t a, b, r;
    if (!load_fp12(&a, a_bytes) || !load_fp12(&b, b_bytes)) return 0;
    switch (op) {
        case BN254_OP_MUL: fp12_mul(&r, &a, &b); break;
        case BN254_OP_SQUARE: fp12_square(&r, &a); break;
        case BN254_OP_INVERSE: fp12_inverse(&r, &a); break;
        case BN254_OP_FROBENIUS_1: fp12_frobenius(&r, &a, 1); break;
        case BN254_OP_FROBENIUS_2: fp12_frobenius(&r, &a, 2); break;
        case BN254_OP_FROBENIUS_3: fp12_frobenius(&r, &a, 3); break;
        case BN254_OP_CYCLOTOMIC_SQUARE: fp12_cyclotomic_square(&r, &a); break;
        case BN254_OP_FINAL_EXPONENTIATION: final_exponentiation(&r, &a); break;
        default: return 0;
    }
    store_fp12(out, &r);
    return 1;
}

int bn254_op_field(int degree, int op, uint8_t *out, const uint8_t *a, const uint8_t *b) {
    switch (degree) {
        case 1: return op_fp(op, out, a, b);
        case 2: return op_fp2(op, out, a, b);
        case 12: return op_fp12(op, out, a, b);
        default: return 0;
    }
}

int bn254_op_g1(int op, uint8_t *out, const uint8_t *a_bytes, const uint8_t *b_bytes, const uint8_t *scalar_bytes) {
    g1_affine_t a, b, result;
    g1_jacobian_t a_jacobian, b_jacobian, r;
    uint64_t scalar[4];
    if (!load_g1(&a, a_bytes) || !load_g1(&b, b_bytes)) return 0;
    if (!g1_is_on_curve(&a) || !g1_is_on_curve(&b)) return 0;
    load_limbs(scalar, scalar_bytes);
    g1_from_affine(&a_jacobian, &a);
    g1_from_affine(&b_jacobian, &b);
    switch (op) {
        case BN254_OP_ADD: g1_add(&r, &a_jacobian, &b_jacobian); break;
        case BN254_OP_DOUBLE: g1_double(&r, &a_jacobian); break;
        case BN254_OP_SCALAR_MUL: g1_scalar_mul(&r, &a, scalar); break;
        case BN254_OP_FIXED_BASE_MUL: {
            g1_fixed_base_t *table = malloc(sizeof *table);
            if (table == NULL || a.infinity || !g1_fixed_base_init(table, &a)) {
                free(table);
                return 0;
            }
            g1_fixed_base_mul(&r, table, scalar);
            free(table);
            break;
        }
        default: return 0;
    }
    g1_to_affine(&result, &r);
    store_g1(out, &result);
    return 1;
}

int bn254_op_g2(int op, uint8_t *out, const uint8_t *a_bytes, const uint8_t *b_bytes, const uint8_t *scalar_bytes) {
    g2_affine_t a, b, result;
    g2_jacobian_t a_jacobian, b_jacobian, r;
    uint64_t scalar[4];
    if (!load_g2(&a, a_bytes) || !load_g2(&b, b_bytes)) return 0;
    if (!g2_is_on_curve(&a) || !g2_is_on_curve(&b)) return 0;
    load_limbs(scalar, scalar_bytes);
    g2_from_affine(&a_jacobian, &a);
    g2_from_affine(&b_jacobian, &b);
    switch (op) {
        case BN254_OP_ADD: g2_add(&r, &a_jacobian, &b_jacobian); break;
        case BN254_OP_DOUBLE: g2_double(&r, &a_jacobian); break;
        case BN254_OP_SCALAR_MUL: g2_scalar_mul(&r, &a, scalar); break;
        case BN254_OP_PSI:
            g2_psi(&result, &a);
            store_g2(out, &result);
            return 1;
        case BN254_OP_IN_SUBGROUP:
            out[0] = (uint8_t)g2_in_subgroup(&a);
            return 1;
        case BN254_OP_IN_SUBGROUP_BY_ORDER:
            out[0] = (uint8_t)g2_in_subgroup_by_order(&a);
            return 1;
        default: return 0;
    }
    g2_to_affine(&result, &r);
    store_g2(out, &result);
    return 1;
}

int bn254_op_pairing(uint8_t *out, const uint8_t *g1_points, const uint8_t *g2_points, size_t count) {
    /* Kept small on purpose: this entry point exists for tests of a few pairs. */
    enum { MAX_PAIRS = 4 };
    g1_affine_t points[MAX_PAIRS];
    g2_prepared_t prepared_storage[MAX_PAIRS];
    const g2_prepared_t *prepared[MAX_PAIRS];
    if (count > MAX_PAIRS) return 0;
    for (size_t k = 0; k < count; k++) {
        g2_affine_t q;
        if (!load_g1(&points[k], g1_points + 64 * k) || !g1_is_on_curve(&points[k])) return 0;
        if (!load_g2(&q, g2_points + 128 * k) || !g2_is_on_curve(&q) || !g2_in_subgroup(&q)) return 0;
        if (q.infinity) points[k].infinity = 1; /* e(P, O) = 1: skip the pair */
        else g2_prepare(&prepared_storage[k], &q);
        prepared[k] = &prepared_storage[k];
    }
    fp12_t f;
    miller_loop(&f, points, prepared, count);
    final_exponentiation(&f, &f);
    store_fp12(out, &f);
    return 1;
}
