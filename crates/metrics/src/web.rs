//! A JSON web endpoint per metric: GET the URL template, read the number at the
//! JSONPath.

use async_trait::async_trait;
use cutover_analysis::SourceFault;
use cutover_spec::{Queries, WebQuery, WebSource};
use reqwest::Client;

use crate::template::At;
use crate::window::{Measure, Reader};
use crate::{http, json_path};

pub(crate) struct Web {
    spec: WebSource,
    client: Client,
}

impl Web {
    pub(crate) fn new(spec: &WebSource) -> Web {
        Web {
            spec: spec.clone(),
            client: http::client(),
        }
    }
}

#[async_trait]
impl Reader for Web {
    type Query = WebQuery;
    const NAME: &'static str = "web";
    const QUERIES_AT: &'static str = "";

    fn queries(&self) -> &Queries<WebQuery> {
        &self.spec.metrics
    }

    async fn read(&self, query: &WebQuery, _: Measure, at: &At) -> Result<f64, SourceFault> {
        let url = http::url(&at.render(query.url.expose()), "", &[])?;
        let answer = http::get(&self.client, url, &query.headers, query.timeout).await?;
        if !answer.is_success() {
            return Err(answer.http_fault());
        }
        let doc = answer.json()?;
        let value = json_path::find(&doc, &query.json_path)
            .map_err(|detail| SourceFault::Empty { detail })?;
        http::number(value)
    }
}

#[cfg(test)]
mod tests;
