#include "blind/broker_message.h"

namespace kz {

ReceivedRequest receive_request(int fd, wire::Request& req) {
  return receive_with_credentials(fd, &req, sizeof req);
}

}  // namespace kz
