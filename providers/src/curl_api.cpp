#include "kz/providers/curl_api.h"

#include <dlfcn.h>

#include <mutex>
#include <type_traits>

namespace kz {

const CurlApi& curl_api() {
  static CurlApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    // Never dlclose'd: libcurl keeps global state (TLS back end, resolver threads).
    void* h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) return;
    auto sym = [h](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
      return fn != nullptr;
    };
    api.ok = sym(api.global_init, "curl_global_init") && sym(api.easy_init, "curl_easy_init") &&
             sym(api.easy_cleanup, "curl_easy_cleanup") && sym(api.easy_setopt, "curl_easy_setopt") &&
             sym(api.easy_perform, "curl_easy_perform") && sym(api.easy_getinfo, "curl_easy_getinfo") &&
             sym(api.easy_strerror, "curl_easy_strerror") && sym(api.slist_append, "curl_slist_append") &&
             sym(api.slist_free_all, "curl_slist_free_all") && sym(api.url, "curl_url") &&
             sym(api.url_set, "curl_url_set") && sym(api.url_get, "curl_url_get") &&
             sym(api.url_cleanup, "curl_url_cleanup") && sym(api.free, "curl_free") &&
             sym(api.share_init, "curl_share_init") && sym(api.share_setopt, "curl_share_setopt") &&
             sym(api.share_cleanup, "curl_share_cleanup");
    if (api.ok) api.ok = api.global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  });
  return api;
}

}  // namespace kz
