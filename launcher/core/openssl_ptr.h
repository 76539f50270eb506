// unique_ptr owners for OpenSSL objects: OsslPtr<X509, X509_free> frees with X509_free.
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace kz {

template <auto FreeFn>
struct OsslFree {
  template <class T>
  void operator()(T* p) const { FreeFn(p); }
};
template <class T, auto FreeFn>
using OsslPtr = std::unique_ptr<T, OsslFree<FreeFn>>;

using X509Ptr = OsslPtr<X509, X509_free>;
using PkeyPtr = OsslPtr<EVP_PKEY, EVP_PKEY_free>;
using BioPtr = OsslPtr<BIO, BIO_free>;
using BnPtr = OsslPtr<BIGNUM, BN_free>;
using AsnIntPtr = OsslPtr<ASN1_INTEGER, ASN1_INTEGER_free>;
using AsnObjectPtr = OsslPtr<ASN1_OBJECT, ASN1_OBJECT_free>;
using ExtPtr = OsslPtr<X509_EXTENSION, X509_EXTENSION_free>;
using GeneralNamesPtr = OsslPtr<GENERAL_NAMES, GENERAL_NAMES_free>;
using GeneralNamePtr = OsslPtr<GENERAL_NAME, GENERAL_NAME_free>;
using StoreCtxPtr = OsslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;
using PkeyCtxPtr = OsslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using MdCtxPtr = OsslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using ParamBldPtr = OsslPtr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using ParamPtr = OsslPtr<OSSL_PARAM, OSSL_PARAM_free>;
using EcdsaSigPtr = OsslPtr<ECDSA_SIG, ECDSA_SIG_free>;

}  // namespace kz
