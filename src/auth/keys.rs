//! API keys and the user-token verification key, configured or generated once and stored.

use base64::Engine;
use rand::Rng;
use rand::distributions::Alphanumeric;

use crate::store::{Store, StoreError};

/// The credentials this installation accepts.
#[derive(Clone)]
pub struct Keys {
    pub secret_key: String,
    pub public_key: String,
    /// PEM of the RSA public key that verifies user tokens.
    pub signing_public_pem: String,
    /// The same key, parsed once at start (parsing a PEM per request costs more than the
    /// signature check itself).
    pub signing_key: jsonwebtoken::DecodingKey,
    /// PEM of the generated private key, when the key pair was generated here (dev tokens).
    /// Never served over HTTP.
    pub signing_private_pem: Option<String>,
    /// True when the secret key was generated on this start (so `main` prints it, once).
    pub generated: bool,
    /// Demo mode only: the key pair demo tokens are signed with. It is loaded only by a
    /// server in demo mode, so a demo token is never accepted outside demo mode, and the
    /// installation's own key never signs a token nobody asked for.
    pub demo: Option<DemoKey>,
}

/// The demo-only signing key pair (kept in `meta`, generated on the first demo start).
#[derive(Clone)]
pub struct DemoKey {
    pub private_pem: String,
    pub verifying_key: jsonwebtoken::DecodingKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not generate the signing key: {0}")]
    Generate(String),
    #[error("TIDINGS_SIGNING_PUBLIC_KEY is not an RSA public key in PEM (or base64 PEM): {0}")]
    BadSigningKey(String),
    #[error("{0}")]
    BadApiKey(String),
}

fn random_key(prefix: &str) -> String {
    let body: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("{prefix}{body}")
}

/// Accepts PEM text or base64 of PEM text (how Knock hands signing keys out).
pub fn decode_pem(input: &str) -> Result<String, String> {
    let trimmed = input.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.to_owned());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(trimmed.replace(['\n', '\r', ' '], ""))
        .map_err(|e| format!("neither PEM nor base64: {e}"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| "base64 does not decode to PEM text".to_owned())?;
    if text.trim_start().starts_with("-----BEGIN") {
        Ok(text.trim().to_owned())
    } else {
        Err("base64 does not decode to PEM text".into())
    }
}

impl Keys {
    /// Loads configured keys, or generates and persists the missing ones.
    pub async fn load(
        store: &Store,
        secret: Option<String>,
        public: Option<String>,
        signing_public: Option<String>,
    ) -> Result<Keys, KeyError> {
        if let Some(sk) = &secret
            && !sk.starts_with("sk_")
        {
            return Err(KeyError::BadApiKey(
                "TIDINGS_SECRET_KEY must start with `sk_`".into(),
            ));
        }
        if let Some(pk) = &public
            && !pk.starts_with("pk_")
        {
            return Err(KeyError::BadApiKey(
                "TIDINGS_PUBLIC_KEY must start with `pk_`".into(),
            ));
        }
        let mut generated = false;
        let secret_key = match secret {
            Some(k) => k,
            None => {
                let existing = store.setting("secret_key").await?;
                match existing {
                    Some(k) => k,
                    None => {
                        generated = true;
                        let candidate = random_key("sk_");
                        store.keep_setting("secret_key", candidate).await?
                    }
                }
            }
        };
        let public_key = match public {
            Some(k) => k,
            None => {
                let candidate = random_key("pk_");
                store.keep_setting("public_key", candidate).await?
            }
        };
        let (signing_public_pem, signing_private_pem) = match signing_public {
            Some(configured) => {
                let pem = decode_pem(&configured).map_err(KeyError::BadSigningKey)?;
                jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| KeyError::BadSigningKey(e.to_string()))?;
                (pem, None)
            }
            None => {
                let (private, public) = stored_or_generated_key_pair(store).await?;
                (public, Some(private))
            }
        };
        let signing_key =
            super::token::decoding_key(&signing_public_pem).map_err(KeyError::BadSigningKey)?;
        Ok(Keys {
            signing_key,
            secret_key,
            public_key,
            signing_public_pem,
            signing_private_pem,
            generated,
            demo: None,
        })
    }

    /// Adds the demo-only key pair (generated once per database); for demo mode only.
    pub async fn with_demo_key(mut self, store: &Store) -> Result<Keys, KeyError> {
        let (private_pem, public_pem) = stored_or_generated_pair(store, DEMO_PAIR).await?;
        let verifying_key =
            super::token::decoding_key(&public_pem).map_err(KeyError::BadSigningKey)?;
        self.demo = Some(DemoKey {
            private_pem,
            verifying_key,
        });
        Ok(self)
    }
}

/// `meta` keys of a stored key pair: (private, public).
type PairNames = (&'static str, &'static str);
const INSTALLATION_PAIR: PairNames = ("signing_private_pem", "signing_public_pem");
const DEMO_PAIR: PairNames = ("demo_signing_private_pem", "demo_signing_public_pem");

/// The development RSA key pair: generated once (2048-bit), kept in `meta`.
async fn stored_or_generated_key_pair(store: &Store) -> Result<(String, String), KeyError> {
    stored_or_generated_pair(store, INSTALLATION_PAIR).await
}

/// A key pair stored under `names`, generated (2048-bit) and stored the first time.
async fn stored_or_generated_pair(
    store: &Store,
    names: PairNames,
) -> Result<(String, String), KeyError> {
    let existing = store.setting_pair(names).await?;
    if let (Some(private), Some(public)) = existing {
        return Ok((private, public));
    }
    let (private, public) = tokio::task::spawn_blocking(generate_key_pair)
        .await
        .map_err(|e| KeyError::Generate(e.to_string()))??;
    store
        .keep_setting_pair(names, (private, public))
        .await
        .map_err(KeyError::from)
}

fn generate_key_pair() -> Result<(String, String), KeyError> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let public = rsa::RsaPublicKey::from(&private);
    let private_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok((private_pem.to_string(), public_pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_may_arrive_base64_encoded() {
        let pem = "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----";
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(decode_pem(&b64).as_deref(), Ok(pem));
        assert_eq!(decode_pem(pem).as_deref(), Ok(pem));
        assert!(decode_pem("not a key").is_err());
    }
}
