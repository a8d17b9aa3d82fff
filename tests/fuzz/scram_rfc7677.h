/*
 * The SCRAM-SHA-256 exchange of RFC 7677 section 3 (user "user", password
 * "pencil"). The SCRAM targets pin their random nonces to it, so the RFC's
 * messages verify and the fuzzer reaches the code after each proof check.
 */
#ifndef PGWING_FUZZ_SCRAM_RFC7677_H
#define PGWING_FUZZ_SCRAM_RFC7677_H

#define RFC_PASSWORD          "pencil"
#define RFC_SALT_B64          "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_ITERATIONS        4096
#define RFC_CLIENT_NONCE      "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE_PART "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST_BARE "n=user,r=" RFC_CLIENT_NONCE
#define RFC_SERVER_FIRST      "r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE_PART ",s=" RFC_SALT_B64 ",i=4096"
#define RFC_CLIENT_FINAL                                   \
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE_PART \
	",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

#endif
