/* Groth16 verification (snarkjs convention):
 *   e(A, B) = e(alpha, beta) * e(vk_x, gamma) * e(C, delta),  vk_x = IC0 + sum_j s_j IC_j,
 * checked as e(-A, B) e(vk_x, gamma) e(C, delta) = e(alpha, beta)^-1 with one multi-Miller
 * loop and one final exponentiation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "bn254.h"
#include "bn254_encoding.h"
#include "bn254_pairing.h"

struct bn254_groth16_key {
    size_t public_count;
    fp12_t alpha_beta_inverse; /* e(alpha, beta)^-1, the target of every check */
    g2_prepared_t gamma;
    g2_prepared_t delta;
    g1_fixed_base_t *ic; /* public_count + 1 tables: IC points are fixed, so precompute */
};

typedef struct {
    g1_affine_t a, c;
    g2_affine_t b;
    uint64_t (*signals)[4]; /* public_count scalars, little-endian limbs */
} parsed_proof_t;

/* ---- scalar field arithmetic, only what the batch's weighted sums need ---- */

static void scalar_mont_mul(uint64_t out[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t t[6] = {0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        uint64_t carry = 0;
        bn254_u128 acc;
        for (int j = 0; j < 4; j++) {
            acc = (bn254_u128)a[j] * b[i] + t[j] + carry;
            t[j] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        acc = (bn254_u128)t[4] + carry;
        t[4] = (uint64_t)acc;
        t[5] = (uint64_t)(acc >> 64);
        uint64_t m = t[0] * BN254_R_MONT_INV;
        acc = (bn254_u128)m * BN254_R[0] + t[0];
        carry = (uint64_t)(acc >> 64);
        for (int j = 1; j < 4; j++) {
            acc = (bn254_u128)m * BN254_R[j] + t[j] + carry;
            t[j - 1] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        acc = (bn254_u128)t[4] + carry;
        t[3] = (uint64_t)acc;
        t[4] = t[5] + (uint64_t)(acc >> 64);
    }
    uint64_t reduced[4];
    uint64_t borrow = limbs_subtract(reduced, t, BN254_R);
    memcpy(out, borrow ? t : reduced, 4 * sizeof(uint64_t));
}

/* (a * b) mod r for a, b < r. */
static void scalar_mul(uint64_t out[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t reduced_product[4];
    scalar_mont_mul(reduced_product, a, b);
    scalar_mont_mul(out, reduced_product, BN254_R_MONT_R2);
}

static void scalar_add(uint64_t out[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t sum[4], reduced[4];
    limbs_add(sum, a, b); /* r < 2^254: no carry out */
    uint64_t borrow = limbs_subtract(reduced, sum, BN254_R);
    memcpy(out, borrow ? sum : reduced, 4 * sizeof(uint64_t));
}

/* ---- key ---- */

static int load_key_g1(g1_affine_t *out, const uint8_t *bytes) {
    if (!load_g1(out, bytes)) return BN254_ERROR_COORDINATE_RANGE;
    if (out->infinity || !g1_is_on_curve(out)) return BN254_ERROR_KEY_POINT;
    return BN254_VALID;
}

static int load_key_g2(g2_affine_t *out, const uint8_t *bytes) {
    if (!load_g2(out, bytes)) return BN254_ERROR_COORDINATE_RANGE;
    if (out->infinity || !g2_is_on_curve(out) || !g2_in_subgroup(out)) return BN254_ERROR_KEY_POINT;
    return BN254_VALID;
}

int bn254_groth16_key_new(bn254_groth16_key **out, const uint8_t *alpha_bytes, const uint8_t *beta_bytes,
                          const uint8_t *gamma_bytes, const uint8_t *delta_bytes, const uint8_t *ic_bytes,
                          size_t public_count) {
    *out = NULL;
    if (public_count >= SIZE_MAX / sizeof(g1_fixed_base_t) - 1) return BN254_ERROR_OUT_OF_MEMORY;
    g1_affine_t alpha, ic_point;
    g2_affine_t beta, gamma, delta;
    int status = load_key_g1(&alpha, alpha_bytes);
    if (status == BN254_VALID) status = load_key_g2(&beta, beta_bytes);
    if (status == BN254_VALID) status = load_key_g2(&gamma, gamma_bytes);
    if (status == BN254_VALID) status = load_key_g2(&delta, delta_bytes);
    for (size_t j = 0; j <= public_count && status == BN254_VALID; j++) {
        status = load_key_g1(&ic_point, ic_bytes + 64 * j);
    }
    if (status != BN254_VALID) return status;

    bn254_groth16_key *key = malloc(sizeof *key);
    g2_prepared_t *beta_lines = malloc(sizeof *beta_lines);
    g1_fixed_base_t *tables = malloc((public_count + 1) * sizeof *tables);
    int ok = key != NULL && beta_lines != NULL && tables != NULL;
    for (size_t j = 0; ok && j <= public_count; j++) {
        load_g1(&ic_point, ic_bytes + 64 * j);
        ok = g1_fixed_base_init(&tables[j], &ic_point);
    }
    if (!ok) {
        free(key);
        free(beta_lines);
        free(tables);
        return BN254_ERROR_OUT_OF_MEMORY;
    }
    key->public_count = public_count;
    key->ic = tables;
    g2_prepare(&key->gamma, &gamma);
    g2_prepare(&key->delta, &delta);
    g2_prepare(beta_lines, &beta);
    const g2_prepared_t *prepared[1] = {beta_lines};
    fp12_t alpha_beta;
    miller_loop(&alpha_beta, &alpha, prepared, 1);
    final_exponentiation(&alpha_beta, &alpha_beta);
    /* In the cyclotomic subgroup the inverse is the conjugate. */
    fp12_conjugate(&key->alpha_beta_inverse, &alpha_beta);
    free(beta_lines);
    *out = key;
    return BN254_VALID;
}

void bn254_groth16_key_free(bn254_groth16_key *key) {
    if (key == NULL) return;
    free(key->ic);
    free(key);
}

/* ---- proofs ---- */

/* Every check the Python backend makes, in the same order, before any pairing. */
static int parse_proof(parsed_proof_t *out, const bn254_groth16_key *key, const uint8_t *proof,
                       const uint8_t *signals, size_t signal_count) {
    if (signal_count != key->public_count) return BN254_ERROR_SIGNAL_COUNT;
    for (size_t j = 0; j < signal_count; j++) {
        if (!load_scalar(out->signals[j], signals + 32 * j)) return BN254_ERROR_SIGNAL_RANGE;
    }
    /* Range, then infinity, then curve, point by point in the order A, C, B. */
    if (!load_g1(&out->a, proof)) return BN254_ERROR_COORDINATE_RANGE;
    if (out->a.infinity) return BN254_ERROR_A_AT_INFINITY;
    if (!g1_is_on_curve(&out->a)) return BN254_ERROR_A_NOT_ON_CURVE;
    if (!load_g1(&out->c, proof + 192)) return BN254_ERROR_COORDINATE_RANGE;
    if (out->c.infinity) return BN254_ERROR_C_AT_INFINITY;
    if (!g1_is_on_curve(&out->c)) return BN254_ERROR_C_NOT_ON_CURVE;
    if (!load_g2(&out->b, proof + 64)) return BN254_ERROR_COORDINATE_RANGE;
    if (out->b.infinity) return BN254_ERROR_B_AT_INFINITY;
    if (!g2_is_on_curve(&out->b)) return BN254_ERROR_B_NOT_ON_TWIST;
    if (!g2_in_subgroup(&out->b)) return BN254_ERROR_B_NOT_IN_SUBGROUP;
    return BN254_VALID;
}

/* IC0 * ic0_weight + sum_j weights[j] * IC_{j+1}. */
static void weighted_inputs(g1_jacobian_t *out, const bn254_groth16_key *key, const uint64_t ic0_weight[4],
                            const uint64_t (*weights)[4]) {
    g1_jacobian_t term;
    g1_fixed_base_mul(out, &key->ic[0], ic0_weight);
    for (size_t j = 0; j < key->public_count; j++) {
        g1_fixed_base_mul(&term, &key->ic[j + 1], weights[j]);
        g1_add(out, out, &term);
    }
}

static int verify_parsed(const bn254_groth16_key *key, const parsed_proof_t *proof) {
    static const uint64_t one[4] = {1, 0, 0, 0};
    g1_jacobian_t vk_x;
    weighted_inputs(&vk_x, key, one, (const uint64_t(*)[4])proof->signals);
    g1_affine_t points[3];
    g1_negate_affine(&points[0], &proof->a);
    g1_to_affine(&points[1], &vk_x);
    points[2] = proof->c;
    g2_prepared_t b_lines;
    g2_prepare(&b_lines, &proof->b);
    const g2_prepared_t *prepared[3] = {&b_lines, &key->gamma, &key->delta};
    fp12_t f;
    miller_loop(&f, points, prepared, 3);
    final_exponentiation(&f, &f);
    return fp12_equal(&f, &key->alpha_beta_inverse) ? BN254_VALID : BN254_INVALID;
}

int bn254_groth16_verify(const bn254_groth16_key *key, const uint8_t *proof_bytes, const uint8_t *signals,
                         size_t signal_count) {
    parsed_proof_t proof;
    proof.signals = malloc((key->public_count + 1) * sizeof *proof.signals);
    if (proof.signals == NULL) return BN254_ERROR_OUT_OF_MEMORY;
    int status = parse_proof(&proof, key, proof_bytes, signals, signal_count);
    if (status == BN254_VALID) status = verify_parsed(key, &proof);
    free(proof.signals);
    return status;
}

/* ---- batch ---- */

static int random_bytes(uint8_t *out, size_t length) {
    size_t filled = 0;
    while (filled < length) {
        ssize_t got = getrandom(out + filled, length - filled, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            break;
        }
        filled += (size_t)got;
    }
    if (filled == length) return 1;
    FILE *device = fopen("/dev/urandom", "rb");
    if (device == NULL) return 0;
    size_t read = fread(out + filled, 1, length - filled, device);
    fclose(device);
    return read == length - filled;
}

/* Nonzero 128-bit weights: a forged proof passes the combined check with probability
 * about 2^-128, and zero would drop a proof from the check altogether. */
static int random_weights(uint64_t (*weights)[4], size_t count) {
    for (size_t i = 0; i < count; i++) {
        do {
            uint8_t bytes[16];
            if (!random_bytes(bytes, sizeof bytes)) return 0;
            memcpy(&weights[i][0], bytes, 8);
            memcpy(&weights[i][1], bytes + 8, 8);
            weights[i][2] = weights[i][3] = 0;
        } while ((weights[i][0] | weights[i][1]) == 0);
    }
    return 1;
}

typedef struct {
    parsed_proof_t *proofs;
    uint64_t (*signal_storage)[4];
    size_t *well_formed; /* indexes of the proofs that passed parsing */
    uint64_t (*weights)[4];
    uint64_t (*signal_weights)[4];
    g1_affine_t *points;
    g1_jacobian_t *weighted; /* -w_i A_i, then vk sum and C sum, before one batched inversion */
    g2_prepared_t *b_lines;
    const g2_prepared_t **prepared;
} batch_memory_t;

static void batch_free(batch_memory_t *memory) {
    free(memory->proofs);
    free(memory->signal_storage);
    free(memory->well_formed);
    free(memory->weights);
    free(memory->signal_weights);
    free(memory->points);
    free(memory->weighted);
    free(memory->b_lines);
    free((void *)memory->prepared);
}

static int batch_alloc(batch_memory_t *memory, size_t count, size_t public_count) {
    memory->proofs = calloc(count, sizeof *memory->proofs);
    memory->signal_storage = calloc(count * (public_count + 1), sizeof *memory->signal_storage);
    memory->well_formed = calloc(count, sizeof *memory->well_formed);
    memory->weights = calloc(count, sizeof *memory->weights);
    memory->signal_weights = calloc(public_count + 1, sizeof *memory->signal_weights);
    memory->points = calloc(count + 2, sizeof *memory->points);
    memory->weighted = calloc(count + 2, sizeof *memory->weighted);
    memory->b_lines = calloc(count, sizeof *memory->b_lines);
    memory->prepared = calloc(count + 2, sizeof *memory->prepared);
    return memory->proofs && memory->signal_storage && memory->well_formed && memory->weights &&
           memory->signal_weights && memory->points && memory->weighted && memory->b_lines && memory->prepared;
}

/* Each proof's equation raised to its weight w_i and multiplied together:
 *   prod_i e(-w_i A_i, B_i) e(sum_i w_i vk_x_i, gamma) e(sum_i w_i C_i, delta) = e(alpha, beta)^-(sum_i w_i),
 * with sum_i w_i vk_x_i = (sum_i w_i) IC0 + sum_j (sum_i w_i s_ij) IC_j: n + 2 Miller loops,
 * one final exponentiation. Returns 1 when it holds, 0 when not, or a negative error. */
static int batch_check(const bn254_groth16_key *key, batch_memory_t *memory, size_t formed) {
    size_t public_count = key->public_count;
    uint64_t weight_sum[4] = {0, 0, 0, 0};
    g1_jacobian_t c_sum, term;
    g1_set_infinity(&c_sum);
    memset(memory->signal_weights, 0, (public_count + 1) * sizeof *memory->signal_weights);
    for (size_t k = 0; k < formed; k++) {
        const parsed_proof_t *proof = &memory->proofs[memory->well_formed[k]];
        const uint64_t *weight = memory->weights[k];
        scalar_add(weight_sum, weight_sum, weight);
        for (size_t j = 0; j < public_count; j++) {
            uint64_t product[4];
            scalar_mul(product, weight, proof->signals[j]);
            scalar_add(memory->signal_weights[j], memory->signal_weights[j], product);
        }
        g1_scalar_mul(&term, &proof->c, weight);
        g1_add(&c_sum, &c_sum, &term);
        g1_affine_t negated_a;
        g1_negate_affine(&negated_a, &proof->a);
        g1_scalar_mul(&memory->weighted[k], &negated_a, weight);
        g2_prepare(&memory->b_lines[k], &proof->b);
        memory->prepared[k] = &memory->b_lines[k];
    }
    weighted_inputs(&memory->weighted[formed], key, weight_sum, (const uint64_t(*)[4])memory->signal_weights);
    memory->weighted[formed + 1] = c_sum;
    if (!g1_batch_to_affine(memory->points, memory->weighted, formed + 2)) return BN254_ERROR_OUT_OF_MEMORY;
    memory->prepared[formed] = &key->gamma;
    memory->prepared[formed + 1] = &key->delta;

    fp12_t f, target;
    miller_loop(&f, memory->points, memory->prepared, formed + 2);
    final_exponentiation(&f, &f);
    cyclotomic_pow(&target, &key->alpha_beta_inverse, weight_sum, 4);
    return fp12_equal(&f, &target);
}

/* Parses every proof, then runs the combined check. With combined_only it reports that
 * check alone in *combined (for tests); otherwise a failed check falls back to checking the
 * well-formed proofs one by one so each status is exact. */
static int run_batch(const bn254_groth16_key *key, const uint8_t *proofs, const uint8_t *signals,
                     size_t signal_count, size_t count, int *statuses, int combined_only, int *combined) {
    *combined = 0;
    if (count == 0) return 0;
    if (signal_count != key->public_count) {
        for (size_t i = 0; i < count; i++) statuses[i] = BN254_ERROR_SIGNAL_COUNT;
        return 0;
    }
    batch_memory_t memory;
    int too_large = count > SIZE_MAX / sizeof(g2_prepared_t) || signal_count + 1 > SIZE_MAX / 32 / count;
    if (too_large || !batch_alloc(&memory, count, signal_count)) {
        if (!too_large) batch_free(&memory);
        for (size_t i = 0; i < count; i++) statuses[i] = BN254_ERROR_OUT_OF_MEMORY;
        return BN254_ERROR_OUT_OF_MEMORY;
    }
    size_t formed = 0;
    for (size_t i = 0; i < count; i++) {
        memory.proofs[i].signals = memory.signal_storage + i * (signal_count + 1);
        statuses[i] = parse_proof(&memory.proofs[i], key, proofs + 256 * i, signals + 32 * signal_count * i,
                                  signal_count);
        if (statuses[i] == BN254_VALID) memory.well_formed[formed++] = i;
    }
    int result = 0;
    if (formed == 1 && !combined_only) {
        statuses[memory.well_formed[0]] = verify_parsed(key, &memory.proofs[memory.well_formed[0]]);
    } else if (formed > 0) {
        if (!random_weights(memory.weights, formed)) {
            result = BN254_ERROR_RANDOMNESS;
        } else {
            int holds = batch_check(key, &memory, formed);
            if (holds < 0) {
                result = holds;
            } else {
                *combined = holds;
                if (!holds && !combined_only) {
                    /* At least one proof is bad: find which, one by one. */
                    for (size_t k = 0; k < formed; k++) {
                        size_t i = memory.well_formed[k];
                        statuses[i] = verify_parsed(key, &memory.proofs[i]);
                    }
                }
            }
        }
    }
    if (result < 0) {
        /* No parsed-but-unchecked proof may be left looking valid. */
        for (size_t k = 0; k < formed; k++) statuses[memory.well_formed[k]] = result;
    }
    batch_free(&memory);
    return result;
}

int bn254_groth16_verify_batch(const bn254_groth16_key *key, const uint8_t *proofs, const uint8_t *signals,
                               size_t signal_count, size_t count, int *statuses) {
    int combined;
    return run_batch(key, proofs, signals, signal_count, count, statuses, 0, &combined);
}

int bn254_op_batch_combined_check(const bn254_groth16_key *key, const uint8_t *proofs, const uint8_t *signals,
                                  size_t signal_count, size_t count, int *statuses) {
    int combined;
    int result = run_batch(key, proofs, signals, signal_count, count, statuses, 1, &combined);
    return result < 0 ? result : combined;
}
