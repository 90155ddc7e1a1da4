/* Byte encodings of bn254.h to and from the internal types. Loaders return 0 when a value
 * is out of range (coordinate >= p, scalar >= r); curve membership is checked elsewhere. */
#ifndef BN254_ENCODING_H
#define BN254_ENCODING_H

#include "bn254_curve.h"

int load_fp2(fp2_t *out, const uint8_t *bytes);
void store_fp2(uint8_t *bytes, const fp2_t *a);
int load_fp12(fp12_t *out, const uint8_t *bytes);
void store_fp12(uint8_t *bytes, const fp12_t *a);
int load_g1(g1_affine_t *out, const uint8_t *bytes);
void store_g1(uint8_t *bytes, const g1_affine_t *p);
int load_g2(g2_affine_t *out, const uint8_t *bytes);
void store_g2(uint8_t *bytes, const g2_affine_t *p);
/* Big-endian 32 bytes to little-endian limbs, without a range check. */
void load_limbs(uint64_t limbs[4], const uint8_t *bytes);
int load_scalar(uint64_t limbs[4], const uint8_t *bytes);

#endif
