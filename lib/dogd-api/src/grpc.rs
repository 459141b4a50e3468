//! The gRPC services: `datadog.api.v1.Agent` (GetHostname) and `datadog.api.v1.AgentSecure`, whose
//! methods are grouped into areas that components implement.

use std::pin::Pin;
use std::sync::Arc;

use dogd_proto::datadog::api::v1::agent_secure_server::AgentSecure;
use dogd_proto::datadog::api::v1::agent_server::Agent;
use dogd_proto::datadog::autodiscovery::AutodiscoveryStreamResponse;
use dogd_proto::datadog::config::{
    ClientGetConfigsRequest, ClientGetConfigsResponse, ConfigSubscriptionRequest,
    ConfigSubscriptionResponse, GetStateConfigResponse, ResetStateConfigResponse,
};
use dogd_proto::datadog::model::v1::{
    CaptureTriggerRequest, CaptureTriggerResponse, ConfigEvent, ConfigStreamRequest,
    FetchEntityRequest, FetchEntityResponse, GenerateContainerIdFromOriginInfoRequest,
    GenerateContainerIdFromOriginInfoResponse, HostTagReply, HostTagRequest, HostnameReply,
    HostnameRequest, StreamTagsRequest, StreamTagsResponse, TaggerState, TaggerStateResponse,
};
use dogd_proto::datadog::remoteagent::v1::{
    RefreshRemoteAgentRequest, RefreshRemoteAgentResponse, RegisterRemoteAgentRequest,
    RegisterRemoteAgentResponse,
};
use dogd_proto::datadog::workloadmeta::{WorkloadmetaStreamRequest, WorkloadmetaStreamResponse};
use futures_core::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The stream type every streaming RPC returns (boxed, so one router can hold any component's
/// service).
pub type GrpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// An `AgentSecure` implementation: what components hand to [`crate::ApiBuilder::secure_grpc`].
/// A component overrides only the methods of its area; the generated defaults answer
/// `Unimplemented` for the rest.
pub type DynAgentSecure = dyn AgentSecure;

/// A group of `AgentSecure` methods served by one component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecureArea {
    /// TaggerStreamEntities, TaggerFetchEntity, TaggerGenerateContainerIDFromOriginInfo.
    Tagger,
    /// DogstatsdCaptureTrigger, DogstatsdSetTaggerState.
    DogstatsdCapture,
    /// ClientGetConfigs(HA), GetConfigState(HA), ResetConfigState, CreateConfigSubscription.
    RemoteConfig,
    /// WorkloadmetaStreamEntities.
    Workloadmeta,
    /// RegisterRemoteAgent, RefreshRemoteAgent.
    RemoteAgent,
    /// AutodiscoveryStreamConfig.
    Autodiscovery,
    /// GetHostTags.
    HostTags,
    /// StreamConfigEvents.
    ConfigStream,
}

impl SecureArea {
    /// What serves this area, for the `Unimplemented` message.
    fn provider(self) -> &'static str {
        match self {
            Self::Tagger => "the tagger",
            Self::DogstatsdCapture => "DogStatsD capture",
            Self::RemoteConfig => "remote configuration",
            Self::Workloadmeta => "workloadmeta",
            Self::RemoteAgent => "the remote agent registry",
            Self::Autodiscovery => "autodiscovery",
            Self::HostTags => "host tags",
            Self::ConfigStream => "the config stream",
        }
    }
}

/// Serves `Agent.GetHostname`.
#[derive(Debug)]
pub(crate) struct HostnameService {
    pub(crate) hostname: Arc<str>,
}

#[tonic::async_trait]
impl Agent for HostnameService {
    async fn get_hostname(
        &self,
        _request: Request<HostnameRequest>,
    ) -> Result<Response<HostnameReply>, Status> {
        Ok(Response::new(HostnameReply {
            hostname: self.hostname.to_string(),
        }))
    }
}

/// Dispatches each `AgentSecure` method to the component serving its area.
#[derive(Default)]
pub(crate) struct SecureRouter {
    areas: Vec<(SecureArea, Arc<DynAgentSecure>)>,
}

impl std::fmt::Debug for SecureRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let areas: Vec<SecureArea> = self.areas.iter().map(|(area, _)| *area).collect();
        f.debug_struct("SecureRouter")
            .field("areas", &areas)
            .finish()
    }
}

impl SecureRouter {
    pub(crate) fn new(areas: Vec<(SecureArea, Arc<DynAgentSecure>)>) -> Self {
        Self { areas }
    }

    /// The component serving `area`. This is the one place an `Unimplemented` status for a
    /// missing component is produced.
    fn area(&self, area: SecureArea) -> Result<&DynAgentSecure, Status> {
        self.areas
            .iter()
            .find(|(candidate, _)| *candidate == area)
            .map(|(_, service)| service.as_ref())
            .ok_or_else(|| {
                Status::unimplemented(format!(
                    "{} is not available in this dogd: the component serving it is not running",
                    area.provider()
                ))
            })
    }
}

#[tonic::async_trait]
impl AgentSecure for SecureRouter {
    async fn tagger_stream_entities(
        &self,
        request: Request<StreamTagsRequest>,
    ) -> Result<Response<GrpcStream<StreamTagsResponse>>, Status> {
        self.area(SecureArea::Tagger)?
            .tagger_stream_entities(request)
            .await
    }

    async fn tagger_generate_container_id_from_origin_info(
        &self,
        request: Request<GenerateContainerIdFromOriginInfoRequest>,
    ) -> Result<Response<GenerateContainerIdFromOriginInfoResponse>, Status> {
        self.area(SecureArea::Tagger)?
            .tagger_generate_container_id_from_origin_info(request)
            .await
    }

    async fn tagger_fetch_entity(
        &self,
        request: Request<FetchEntityRequest>,
    ) -> Result<Response<FetchEntityResponse>, Status> {
        self.area(SecureArea::Tagger)?
            .tagger_fetch_entity(request)
            .await
    }

    async fn dogstatsd_capture_trigger(
        &self,
        request: Request<CaptureTriggerRequest>,
    ) -> Result<Response<CaptureTriggerResponse>, Status> {
        self.area(SecureArea::DogstatsdCapture)?
            .dogstatsd_capture_trigger(request)
            .await
    }

    async fn dogstatsd_set_tagger_state(
        &self,
        request: Request<TaggerState>,
    ) -> Result<Response<TaggerStateResponse>, Status> {
        self.area(SecureArea::DogstatsdCapture)?
            .dogstatsd_set_tagger_state(request)
            .await
    }

    async fn client_get_configs(
        &self,
        request: Request<ClientGetConfigsRequest>,
    ) -> Result<Response<ClientGetConfigsResponse>, Status> {
        self.area(SecureArea::RemoteConfig)?
            .client_get_configs(request)
            .await
    }

    async fn get_config_state(
        &self,
        request: Request<pbjson_types::Empty>,
    ) -> Result<Response<GetStateConfigResponse>, Status> {
        self.area(SecureArea::RemoteConfig)?
            .get_config_state(request)
            .await
    }

    async fn client_get_configs_ha(
        &self,
        request: Request<ClientGetConfigsRequest>,
    ) -> Result<Response<ClientGetConfigsResponse>, Status> {
        self.area(SecureArea::RemoteConfig)?
            .client_get_configs_ha(request)
            .await
    }

    async fn get_config_state_ha(
        &self,
        request: Request<pbjson_types::Empty>,
    ) -> Result<Response<GetStateConfigResponse>, Status> {
        self.area(SecureArea::RemoteConfig)?
            .get_config_state_ha(request)
            .await
    }

    async fn create_config_subscription(
        &self,
        request: Request<Streaming<ConfigSubscriptionRequest>>,
    ) -> Result<Response<GrpcStream<ConfigSubscriptionResponse>>, Status> {
        self.area(SecureArea::RemoteConfig)?
            .create_config_subscription(request)
            .await
    }

    async fn reset_config_state(
        &self,
        request: Request<pbjson_types::Empty>,
    ) -> Result<Response<ResetStateConfigResponse>, Status> {
        self.area(SecureArea::RemoteConfig)?
            .reset_config_state(request)
            .await
    }

    async fn workloadmeta_stream_entities(
        &self,
        request: Request<WorkloadmetaStreamRequest>,
    ) -> Result<Response<GrpcStream<WorkloadmetaStreamResponse>>, Status> {
        self.area(SecureArea::Workloadmeta)?
            .workloadmeta_stream_entities(request)
            .await
    }

    async fn register_remote_agent(
        &self,
        request: Request<RegisterRemoteAgentRequest>,
    ) -> Result<Response<RegisterRemoteAgentResponse>, Status> {
        self.area(SecureArea::RemoteAgent)?
            .register_remote_agent(request)
            .await
    }

    async fn refresh_remote_agent(
        &self,
        request: Request<RefreshRemoteAgentRequest>,
    ) -> Result<Response<RefreshRemoteAgentResponse>, Status> {
        self.area(SecureArea::RemoteAgent)?
            .refresh_remote_agent(request)
            .await
    }

    async fn autodiscovery_stream_config(
        &self,
        request: Request<pbjson_types::Empty>,
    ) -> Result<Response<GrpcStream<AutodiscoveryStreamResponse>>, Status> {
        self.area(SecureArea::Autodiscovery)?
            .autodiscovery_stream_config(request)
            .await
    }

    async fn get_host_tags(
        &self,
        request: Request<HostTagRequest>,
    ) -> Result<Response<HostTagReply>, Status> {
        self.area(SecureArea::HostTags)?
            .get_host_tags(request)
            .await
    }

    async fn stream_config_events(
        &self,
        request: Request<ConfigStreamRequest>,
    ) -> Result<Response<GrpcStream<ConfigEvent>>, Status> {
        self.area(SecureArea::ConfigStream)?
            .stream_config_events(request)
            .await
    }
}
