/* Public interface of the native BN254 Groth16 verifier (used through cffi).
 *
 * Encodings: field elements are 32-byte big-endian integers; an Fp2 element is c0 then c1
 * (value c0 + c1 u); a G1 point is x, y (64 bytes); a G2 point is x.c0, x.c1, y.c0, y.c1
 * (128 bytes, the snarkjs [c0, c1] order); all-zero coordinates encode the point at
 * infinity. A proof is A (G1), B (G2), C (G1): 256 bytes. Public signals are 32 bytes each.
 */
#ifndef BN254_H
#define BN254_H

#include <stddef.h>
#include <stdint.h>

/* Verification outcomes and the reasons an input is rejected before any pairing. */
#define BN254_VALID 1
#define BN254_INVALID 0
#define BN254_ERROR_SIGNAL_COUNT -1
#define BN254_ERROR_SIGNAL_RANGE -2
#define BN254_ERROR_COORDINATE_RANGE -3
#define BN254_ERROR_A_NOT_ON_CURVE -4
#define BN254_ERROR_A_AT_INFINITY -5
#define BN254_ERROR_B_NOT_ON_TWIST -6
#define BN254_ERROR_B_AT_INFINITY -7
#define BN254_ERROR_B_NOT_IN_SUBGROUP -8
#define BN254_ERROR_C_NOT_ON_CURVE -9
#define BN254_ERROR_C_AT_INFINITY -10
#define BN254_ERROR_OUT_OF_MEMORY -11
#define BN254_ERROR_RANDOMNESS -12
#define BN254_ERROR_KEY_POINT -13

typedef struct bn254_groth16_key bn254_groth16_key;

/* Parses and checks a verification key and precomputes e(alpha, beta) and the lines of
 * gamma and delta. ic holds public_count + 1 G1 points. Returns BN254_VALID or an error. */
int bn254_groth16_key_new(bn254_groth16_key **out, const uint8_t *alpha, const uint8_t *beta,
                          const uint8_t *gamma, const uint8_t *delta, const uint8_t *ic,
                          size_t public_count);
void bn254_groth16_key_free(bn254_groth16_key *key);

/* One proof: BN254_VALID, BN254_INVALID, or the (negative) reason it was rejected. */
int bn254_groth16_verify(const bn254_groth16_key *key, const uint8_t *proof, const uint8_t *signals,
                         size_t signal_count);

/* count proofs under one key, signal_count signals each (concatenated). Writes one outcome per
 * proof to statuses and returns 0, or a negative error when the check could not run at all;
 * then every proof not already rejected carries that error as its status, never VALID. */
int bn254_groth16_verify_batch(const bn254_groth16_key *key, const uint8_t *proofs, const uint8_t *signals,
                               size_t signal_count, size_t count, int *statuses);

/* Building blocks exposed for differential tests. Each returns 1, or 0 when an input is not
 * a valid encoding (coordinate >= p, point off its curve). */
#define BN254_OP_ADD 0
#define BN254_OP_SUB 1
#define BN254_OP_MUL 2
#define BN254_OP_SQUARE 3
#define BN254_OP_INVERSE 4
#define BN254_OP_FROBENIUS_1 5
#define BN254_OP_FROBENIUS_2 6
#define BN254_OP_FROBENIUS_3 7
#define BN254_OP_CYCLOTOMIC_SQUARE 8
#define BN254_OP_FINAL_EXPONENTIATION 9
#define BN254_OP_DOUBLE 10
#define BN254_OP_SCALAR_MUL 11
#define BN254_OP_IN_SUBGROUP 12
#define BN254_OP_PSI 13
#define BN254_OP_IN_SUBGROUP_BY_ORDER 14
#define BN254_OP_FIXED_BASE_MUL 15
#define BN254_OP_MUL_BY_XI 16
#define BN254_OP_MUL_BY_SMALL 17

int bn254_op_field(int degree, int op, uint8_t *out, const uint8_t *a, const uint8_t *b);
int bn254_op_g1(int op, uint8_t *out, const uint8_t *a, const uint8_t *b, const uint8_t *scalar);
int bn254_op_g2(int op, uint8_t *out, const uint8_t *a, const uint8_t *b, const uint8_t *scalar);
/* Product of e(g1[k], g2[k]) over count pairs, as an Fp12 element (12 Fp, tower order). */
int bn254_op_pairing(uint8_t *out, const uint8_t *g1_points, const uint8_t *g2_points, size_t count);

/* The combined (weighted) batch equation alone over the well-formed proofs, without the
 * one-by-one fallback: 1 when it holds, 0 when not, or a negative error. */
int bn254_op_batch_combined_check(const bn254_groth16_key *key, const uint8_t *proofs, const uint8_t *signals,
                                  size_t signal_count, size_t count, int *statuses);

#endif
