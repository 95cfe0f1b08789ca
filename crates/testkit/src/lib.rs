//! Stand-ins for what cannot be installed on the development machines (a kube-apiserver, a load
//! client, tailscaled's LocalAPI) and a harness for an S3 server that is not ours (moto).
pub mod apiserver;
pub mod load;
pub mod localapi_standin;
pub mod s3_server;
