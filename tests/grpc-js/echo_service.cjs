// The one gRPC method of the HTTP/2 tests, /kz.test.Echo/Echo, with raw bytes as
// messages (no protobuf schema: grpc-js frames them as any message, a 5-byte length
// prefix in DATA). Shared by grpc_server.cjs and grpc_client.cjs.
const path = require('node:path');

const grpc = require(path.join(__dirname, 'node_modules', '@grpc', 'grpc-js'));
const ident = (b) => b;
const service = {
  Echo: {
    path: '/kz.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: ident,
    requestDeserialize: ident,
    responseSerialize: ident,
    responseDeserialize: ident,
  },
};

module.exports = { grpc, service };
