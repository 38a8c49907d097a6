#include "client/channel.h"

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace ledger::client {

std::shared_ptr<grpc::Channel> NewChannel(const std::string& server,
                                          const ChannelOptions& options) {
  grpc::ChannelArguments args;
  if (options.own_connection) {
    // Separate channels get separate TCP connections (no shared subchannel
    // pool); the index keeps their arguments, hence their subchannels, apart.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("ledger.client.connection", options.connection_index);
  }
  if (options.max_receive_message_bytes > 0) {
    args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  }
  if (options.max_send_message_bytes > 0) {
    args.SetMaxSendMessageSize(options.max_send_message_bytes);
  }
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
}

bool WaitForConnection(grpc::Channel& channel, std::chrono::milliseconds timeout) {
  return channel.WaitForConnected(std::chrono::system_clock::now() + timeout);
}

void PrepareCall(grpc::ClientContext& context, std::chrono::milliseconds timeout,
                 CallPolicy policy) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.set_wait_for_ready(policy == CallPolicy::kWaitForReady);
}

}  // namespace ledger::client
