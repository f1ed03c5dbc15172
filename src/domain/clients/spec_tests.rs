//! Unit tests of client settings: validation of every field; and
//! the properties of the CIDR and field-mask parsers.

mod unit {
    use super::super::*;

    fn input() -> ClientInput {
        ClientInput {
            tenant: "acme".into(),
            name: "billing".into(),
            scopes: vec!["read:*".into()],
            audiences: vec!["https://api".into(), "https://api".into()],
            allowed_cidrs: vec!["10.1.2.3/8".into()],
            active: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_normalisation() {
        let spec = ClientSpec::from_input(&input()).unwrap();
        assert_eq!(spec.access_token_ttl, DEFAULT_ACCESS_TTL);
        assert_eq!(spec.refresh_token_ttl, Duration::ZERO);
        assert_eq!(spec.audiences.len(), 1);
        assert_eq!(spec.allowed_cidrs[0].to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bare_addresses_mean_one_host() {
        let mut one = input();
        one.allowed_cidrs = vec!["10.0.1.5".into(), "::1".into(), "10.0.1.5/32".into()];
        let spec = ClientSpec::from_input(&one).unwrap();
        let texts: Vec<String> = spec.allowed_cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["10.0.1.5/32", "::1/128"]);
    }

    #[test]
    fn errors_name_the_field() {
        let mut bad = input();
        bad.name = String::new();
        let err = ClientSpec::from_input(&bad).unwrap_err();
        assert!(err.to_string().starts_with("client.name:"), "{err}");
        let mut bad = input();
        bad.allowed_cidrs = vec!["10.0.0.0/8".into(), "nonsense".into()];
        let err = ClientSpec::from_input(&bad).unwrap_err();
        assert!(
            err.to_string().starts_with("client.allowed_cidrs[1]:"),
            "{err}"
        );
        let mut bad = input();
        bad.access_token_ttl = Some(Duration::from_secs(2 * 24 * 3600));
        assert!(ClientSpec::from_input(&bad).is_err());
    }

    #[test]
    fn update_changes_only_masked_fields() {
        let mut spec = ClientSpec::from_input(&input()).unwrap();
        let mut change = input();
        change.name = "renamed".into();
        change.active = Some(false);
        spec.apply(&change, &ClientField::parse_mask(&["active"]).unwrap())
            .unwrap();
        assert!(!spec.active);
        assert_eq!(spec.name, "billing");
    }

    /// The RFC 8037 example Ed25519 public key.
    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    #[test]
    fn the_secret_methods_are_the_default_and_private_key_jwt_needs_keys() {
        let spec = ClientSpec::from_input(&input()).unwrap();
        assert!(spec.auth_methods.uses_secret() && spec.jwks.is_none());
        let mut keyed = input();
        keyed.auth_methods = vec!["private_key_jwt".into()];
        let err = ClientSpec::from_input(&keyed).unwrap_err().to_string();
        assert!(err.starts_with("client.jwks:"), "{err}");
        keyed.jwks = JWKS.into();
        let spec = ClientSpec::from_input(&keyed).unwrap();
        assert!(!spec.auth_methods.uses_secret());
        assert!(spec.jwks.unwrap().select(Some("k1")).is_some());
        keyed.jwks = JWKS.replace(r#""kid""#, r#""d":"nXhJnYi1Bw","kid""#);
        let err = ClientSpec::from_input(&keyed).unwrap_err().to_string();
        assert!(err.starts_with("client.jwks.keys[0].d:"), "{err}");
    }

    #[test]
    fn an_update_cannot_drop_the_keys_a_listed_method_needs() {
        let mut keyed = input();
        keyed.auth_methods = vec!["private_key_jwt".into(), "client_secret_basic".into()];
        keyed.jwks = JWKS.into();
        let mut spec = ClientSpec::from_input(&keyed).unwrap();
        keyed.jwks = String::new();
        let mask = ClientField::parse_mask(&["jwks"]).unwrap();
        assert!(spec.clone().apply(&keyed, &mask).is_err());
        let mask = ClientField::parse_mask(&["jwks", "auth_methods"]).unwrap();
        keyed.auth_methods = vec![];
        spec.apply(&keyed, &mask).unwrap();
        assert!(spec.jwks.is_none() && spec.auth_methods.uses_secret());
    }

    #[test]
    fn mask_parsing() {
        assert_eq!(
            ClientField::parse_mask(&["*"]).unwrap().len(),
            ClientField::ALL.len()
        );
        assert!(ClientField::parse_mask::<&str>(&[]).is_err());
        assert!(ClientField::parse_mask(&["tenant"]).is_err());
        let err = ClientField::parse_mask(&["nmae"]).unwrap_err().to_string();
        assert!(err.contains("unknown path \"nmae\""), "{err}");
        assert_eq!(
            ClientField::parse_mask(&["client.name"]).unwrap(),
            vec![ClientField::Name]
        );
    }
}

mod properties {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::super::*;

    /// A CIDR range as text, possibly with host bits set (`10.1.2.3/8`).
    fn cidr() -> impl Strategy<Value = String> {
        prop_oneof![
            (any::<u32>(), 0..=32u8).prop_map(|(a, p)| format!("{}/{p}", Ipv4Addr::from(a))),
            (any::<u128>(), 0..=128u8).prop_map(|(a, p)| format!("{}/{p}", Ipv6Addr::from(a))),
        ]
    }

    proptest! {
        #[test]
        fn cidr_lists_normalise_to_sorted_unique_networks(raw in vec(cidr(), 0..=MAX_LIST)) {
            let nets = cidrs("allowed_cidrs", &raw).unwrap();
            prop_assert!(nets.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
            prop_assert!(nets.iter().all(|n| *n == n.trunc()), "no host bits");
            for text in &raw {
                let net: IpNet = text.parse().unwrap();
                prop_assert!(nets.contains(&net.trunc()), "{text} lost");
            }
        }

        #[test]
        fn normalised_cidrs_parse_back_to_themselves(raw in vec(cidr(), 0..20)) {
            let nets = cidrs("allowed_cidrs", &raw).unwrap();
            let texts: Vec<String> = nets.iter().map(ToString::to_string).collect();
            prop_assert_eq!(cidrs("allowed_cidrs", &texts).unwrap(), nets);
        }

        #[test]
        fn arbitrary_entries_never_panic_and_errors_name_the_first_bad_one(
            raw in vec(prop_oneof![cidr(), any::<String>()], 0..10),
        ) {
            match cidrs("allowed_cidrs", &raw) {
                Ok(nets) => prop_assert!(nets.len() <= raw.len()),
                Err(err) => {
                    let first_bad = raw.iter().position(|s| net(s).is_none()).unwrap();
                    let prefix = format!("allowed_cidrs[{first_bad}]:");
                    prop_assert!(err.to_string().starts_with(&prefix), "{err}");
                }
            }
        }

        #[test]
        fn too_many_cidrs_are_refused(extra in 1..10usize) {
            let raw = vec!["10.0.0.0/8".to_owned(); MAX_LIST + extra];
            prop_assert!(cidrs("allowed_cidrs", &raw).is_err());
        }

        #[test]
        fn known_mask_paths_parse_to_their_fields(
            picks in vec((0..ClientField::ALL.len(), any::<bool>()), 1..30),
        ) {
            let paths: Vec<String> = picks
                .iter()
                .map(|&(i, prefixed)| {
                    let path = ClientField::ALL[i].path();
                    if prefixed { format!("client.{path}") } else { path.to_owned() }
                })
                .collect();
            let fields = ClientField::parse_mask(&paths).unwrap();
            let named: BTreeSet<usize> = picks.iter().map(|&(i, _)| i).collect();
            let parsed: BTreeSet<usize> = fields
                .iter()
                .map(|f| ClientField::ALL.iter().position(|a| a == f).unwrap())
                .collect();
            prop_assert_eq!(parsed, named);
        }

        #[test]
        fn immutable_fields_are_refused_wherever_they_appear(
            before in vec(0..ClientField::ALL.len(), 0..5),
            immutable in prop_oneof![
                Just("client_id"), Just("tenant"), Just("create_time"),
                Just("update_time"), Just("last_used_time"),
            ],
        ) {
            let mut paths: Vec<String> =
                before.iter().map(|&i| ClientField::ALL[i].path().to_owned()).collect();
            paths.push(immutable.to_owned());
            prop_assert!(ClientField::parse_mask(&paths).is_err());
        }

        #[test]
        fn arbitrary_mask_paths_never_panic_and_only_known_ones_parse(
            paths in vec(prop_oneof![any::<String>(), "(client\\.)?[a-z_*]{1,25}"], 0..6),
        ) {
            if ClientField::parse_mask(&paths).is_ok() {
                prop_assert!(!paths.is_empty());
                for path in &paths {
                    let path = path.strip_prefix("client.").unwrap_or(path);
                    prop_assert!(
                        path == "*" || ClientField::ALL.iter().any(|f| f.path() == path),
                        "{path:?} accepted"
                    );
                }
            }
        }
    }
}
