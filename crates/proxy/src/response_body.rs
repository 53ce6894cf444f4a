//! The response body the proxy sends to the client: an upstream's body streamed
//! through, holding the version's in-flight guard until it ends and counting its
//! failure as an error of the version, then putting its upstream connection back
//! in the instance's pool; or a short body of the proxy's own.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use std::sync::Arc;

use crate::pool::Sender;
use crate::stats::InFlight;
use crate::upload::{Phase, Upload};

/// The response body the proxy sends: an upstream body streamed through (holding
/// the version's in-flight guard until it ends or is dropped, and counting an
/// error if it fails; its connection goes back to the pool only if it ends), or a
/// short body of the proxy's own.
pub(crate) struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Upstream {
        body: Incoming,
        in_flight: Option<InFlight>,
        /// The connection the body comes on, until it ends.
        connection: Option<Sender>,
        /// The request body's upload, if it had one: a connection still taking it
        /// when the response ends (an early answer) is not put back, or the next
        /// request on it would wait for the rest of this one's upload.
        upload: Option<Arc<Upload>>,
        /// The request's span, for a failure of the body after
        /// [`handle`](crate::forward::handle) returned.
        span: tracing::Span,
    },
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub(crate) fn upstream(
        body: Incoming,
        in_flight: InFlight,
        connection: Sender,
        upload: Option<Arc<Upload>>,
        span: tracing::Span,
    ) -> ProxyBody {
        let (mut in_flight, mut connection) = (Some(in_flight), Some(connection));
        if body.is_end_stream() {
            ended(&mut in_flight, &mut connection, &upload);
        }
        ProxyBody {
            kind: Kind::Upstream {
                body,
                in_flight,
                connection,
                upload,
                span,
            },
        }
    }

    pub(crate) fn full(bytes: Bytes) -> ProxyBody {
        ProxyBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

/// The upstream body ended whole: the request ends, and its connection goes back
/// to its instance's pool for the next one, unless it is still taking the
/// request's body (dropped, hyper closes it once that is over).
fn ended(
    in_flight: &mut Option<InFlight>,
    connection: &mut Option<Sender>,
    upload: &Option<Arc<Upload>>,
) {
    if let (Some(in_flight), Some(connection)) = (in_flight.take(), connection.take()) {
        let sent = upload
            .as_ref()
            .is_none_or(|upload| matches!(upload.phase(), Phase::Sent { .. }));
        if sent {
            in_flight.endpoint().put_back(connection);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream {
                body,
                in_flight,
                connection,
                upload,
                span,
            } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Err(e))) => {
                        if let Some(in_flight) = in_flight.take() {
                            span.in_scope(|| {
                                tracing::debug!(error = %e, "upstream response body failed");
                            });
                            in_flight.body_failed();
                        }
                        *connection = None;
                    }
                    Poll::Ready(None) => ended(in_flight, connection, upload),
                    Poll::Ready(Some(Ok(_))) if body.is_end_stream() => {
                        ended(in_flight, connection, upload);
                    }
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}
