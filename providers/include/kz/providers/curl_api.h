// libcurl, loaded with dlopen on first use. libcurl and the ~30 libraries it pulls in
// cost more start-up time than the rest of kz together, and only the HTTP providers and
// the MCP fetch tool need them, so nothing links against it: callers go through this
// table of function pointers (the types come from libcurl's headers).
#pragma once

#include <curl/curl.h>

namespace kz {

struct CurlApi {
  decltype(&curl_global_init) global_init = nullptr;
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_perform) easy_perform = nullptr;
  decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
  decltype(&curl_slist_append) slist_append = nullptr;
  decltype(&curl_slist_free_all) slist_free_all = nullptr;
  // The URL API (libcurl 7.62+).
  decltype(&curl_url) url = nullptr;
  decltype(&curl_url_set) url_set = nullptr;
  decltype(&curl_url_get) url_get = nullptr;
  decltype(&curl_url_cleanup) url_cleanup = nullptr;
  decltype(&curl_free) free = nullptr;
  // Share handles (caches shared between easy handles).
  decltype(&curl_share_init) share_init = nullptr;
  decltype(&curl_share_setopt) share_setopt = nullptr;
  decltype(&curl_share_cleanup) share_cleanup = nullptr;
  bool ok = false;   // every symbol above was found and curl_global_init ran
};

// Loads libcurl.so.4 the first time it is called (thread-safe); check `ok` before use.
const CurlApi& curl_api();

}  // namespace kz
