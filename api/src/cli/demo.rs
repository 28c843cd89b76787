//! `leadrank demo`: a new tenant full of plausible, scored leads, to try the
//! product with and to measure it at scale.
//!
//! The tenant, its people and its teams are made through the same services
//! as `signUp`, `createUser` and `createTeam`, so they are exactly what a
//! real tenant has. Leads and their activities are then written in bulk,
//! hundreds of rows per statement, because the one-lead-at-a-time services
//! would take hours for a million leads. Every lead is still scored by the
//! tenant's model, with its signal state folded from its activities the way
//! `record_activity` folds them, so each row carries a real score, tier,
//! explanation, flags and follow-up date. Each lead also gets the "created"
//! score event `create_lead` records, and each closed lead the STAGE event
//! `close_lead` records.
//!
//! Everything but ids and the password follows from the seed. One hidden
//! quality per lead drives its ratings, how much it engages, how far it got
//! in the pipeline and whether it was won, so tiers mean something and a
//! close-probability model has something to learn.

use entity::{LeadId, PipelineId, TeamId, UserId};
use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write as _,
    ops::Range,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use entity::{
    activity,
    enums::{Direction, FieldType, LeadStatus, Role, StageKind},
    lead, lead_event, stage,
};
use rand::{
    RngExt, SeedableRng,
    distr::weighted::WeightedIndex,
    rngs::Xoshiro256PlusPlus,
    seq::{IndexedRandom, IteratorRandom},
};
use rand_distr::{LogNormal, Normal, Triangular};
use scoring::{ActivityState, SignalDef};
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbBackend};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::domain::{Email, Locale, Parse, Slug};
use crate::{
    auth::{
        Principal,
        throttle::{LoginThrottle, SignUpThrottle},
        tokens::TokenKeys,
        tokens::random_token,
    },
    config::{Secret, Settings},
    error::AppError,
    service::{
        accounts::account::{self, Auth, NewUser, SignUp},
        begin_write,
        configuration::tenant_config::TenantConfig,
        leads::lead_writer,
        leads::rescoring::{self, ModelInUse},
    },
    tenancy::{TenantScope, Walled},
};

/// The most leads one run makes: phone numbers stay unique up to here.
pub const MAX_LEADS: u64 = 10_000_000;

/// Leads per transaction, with their activities and events: few enough
/// commits to be fast, small enough to keep memory flat.
const LEADS_PER_TRANSACTION: u64 = 5_000;

/// The teams, each with one manager.
const TEAMS: [&str; 4] = [
    "Enterprise",
    "Mid-market",
    "Small business",
    "Greater China",
];

/// Seconds in a day.
const DAY: i64 = 86_400;

/// What to generate.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The new tenant's slug; refused when it exists.
    pub tenant_slug: String,
    /// How many leads, up to [`MAX_LEADS`].
    pub leads: u64,
    /// Activities per lead on average; better leads get more.
    pub activities_per_lead: u32,
    /// The same seed gives the same people, companies, ratings, activities
    /// and outcomes (ids and the password differ every run).
    pub seed: u64,
    /// Sales reps, spread over the teams. With none, every lead is in the
    /// shared pool.
    pub reps: u32,
    /// The moment the data is generated for: leads were created over the
    /// year before it, and they are scored as of it.
    pub now: DateTime<Utc>,
}

/// What was made, and how to sign in.
pub struct DemoSummary {
    /// The tenant's slug.
    pub tenant_slug: String,
    /// The OWNER's email.
    pub owner_email: String,
    /// Every demo user's password, generated for this run.
    pub password: Secret,
    /// Managers, one per team: `manager1@…` to `managerN@…`.
    pub managers: u32,
    /// Reps: `rep1@…` to `repN@…`.
    pub reps: u32,
    /// Teams.
    pub teams: u32,
    /// Leads written.
    pub leads: u64,
    /// Of which closed as won.
    pub won: u64,
    /// Of which closed as lost.
    pub lost: u64,
    /// Activities written.
    pub activities: u64,
    /// Score and lead events written.
    pub events: u64,
    /// Leads per tier key.
    pub tiers: BTreeMap<String, u64>,
    /// Leads per flag name (`URGENT`, `COLD`, …).
    pub flags: BTreeMap<&'static str, u64>,
    /// Creating the tenant, its users and teams (password hashing dominates).
    pub setup_elapsed: Duration,
    /// Generating, scoring and writing the leads.
    pub load_elapsed: Duration,
}

impl DemoSummary {
    /// The email of demo user `local`, e.g. `rep3`.
    pub fn email(&self, local: &str) -> String {
        user_email(local, &self.tenant_slug)
    }

    /// What the command prints: how to sign in, what was made, how fast.
    pub fn report(&self) -> String {
        let per_second = |n: u64| n as f64 / self.load_elapsed.as_secs_f64().max(1e-9);
        let join = |counts: Vec<String>| counts.join(", ");
        let mut out = String::new();
        let _ = writeln!(out, "Demo tenant \"{}\" is ready.", self.tenant_slug);
        let _ = writeln!(out);
        let _ = writeln!(out, "  Sign in with");
        let _ = writeln!(out, "    tenant:   {}", self.tenant_slug);
        let _ = writeln!(out, "    email:    {}", self.owner_email);
        let _ = writeln!(out, "    password: {}", self.password.expose());
        let _ = writeln!(
            out,
            "  Managers {} to {} use the same password.",
            self.email("manager1"),
            self.email(&format!("manager{}", self.managers)),
        );
        if self.reps > 0 {
            let _ = writeln!(
                out,
                "  So do reps {} to {}.",
                self.email("rep1"),
                self.email(&format!("rep{}", self.reps)),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {} teams, {} managers, {} reps",
            self.teams, self.managers, self.reps
        );
        let _ = writeln!(
            out,
            "  {} leads ({} won, {} lost), {} activities, {} events",
            self.leads, self.won, self.lost, self.activities, self.events
        );
        let _ = writeln!(
            out,
            "  tiers: {}",
            join(self.tiers.iter().map(|(k, n)| format!("{k} {n}")).collect())
        );
        let _ = writeln!(
            out,
            "  flags: {}",
            join(self.flags.iter().map(|(k, n)| format!("{k} {n}")).collect())
        );
        let _ = writeln!(
            out,
            "  users and teams in {:.1} s; leads in {:.1} s: {:.0} leads/s, {:.0} activities/s, {:.0} rows/s",
            self.setup_elapsed.as_secs_f64(),
            self.load_elapsed.as_secs_f64(),
            per_second(self.leads),
            per_second(self.activities),
            per_second(self.leads + self.activities + self.events),
        );
        out
    }
}

fn user_email(local: &str, slug: &str) -> String {
    format!("{local}@{slug}.example")
}

/// What sign-up needs to issue the owner's first session, which the demo
/// does not use: a one-off signing key, so the demo never creates or reads
/// the server's secret file.
///
/// # Errors
/// When the system random source fails, or a lifetime setting is too large.
pub fn auth(settings: &Settings) -> anyhow::Result<Auth> {
    let lifetime = |d: Duration, name: &str| {
        chrono::Duration::from_std(d).with_context(|| format!("{name} is too large"))
    };
    Ok(Auth {
        keys: TokenKeys::from_secret(&Secret::new(random_token(48)?)),
        access_ttl: lifetime(settings.access_token_ttl, "LEADRANK_ACCESS_TOKEN_TTL_SECS")?,
        refresh_ttl: lifetime(
            settings.refresh_token_ttl,
            "LEADRANK_REFRESH_TOKEN_TTL_SECS",
        )?,
        session_max_lifetime: lifetime(
            settings.session_max_lifetime,
            "LEADRANK_SESSION_MAX_LIFETIME_SECS",
        )?,
        throttle: LoginThrottle {
            per_account: settings.login_max_failures,
            per_client: settings.login_max_failures_per_client,
            window: lifetime(settings.login_window, "LEADRANK_LOGIN_WINDOW_SECS")?,
        },
        // The demo signs up from the command line, not from a client.
        sign_ups: SignUpThrottle {
            per_client: 0,
            window: chrono::Duration::zero(),
        },
    })
}

/// Creates the tenant `options.tenant_slug` with its owner, managers, reps
/// and teams, then `options.leads` scored leads with their activities.
///
/// # Errors
/// When the slug is taken or invalid, the options are out of range, or the
/// database fails. Leads are committed in batches, so a failure part-way
/// leaves the tenant with the leads written so far.
pub async fn generate(
    db: &DatabaseConnection,
    auth: &Auth,
    options: DemoOptions,
) -> anyhow::Result<DemoSummary> {
    if options.leads > MAX_LEADS {
        bail!("--leads must be at most {MAX_LEADS}, got {}", options.leads);
    }
    if options.activities_per_lead > 1_000 {
        bail!(
            "--activities-per-lead must be at most 1000, got {}",
            options.activities_per_lead
        );
    }
    if options.reps > 10_000 {
        bail!("--reps must be at most 10000, got {}", options.reps);
    }
    let started = Instant::now();
    let password = Secret::new(random_token(15)?);
    let people = create_people(db, auth, &options, &password).await?;
    let setup_elapsed = started.elapsed();

    let started = Instant::now();
    let walled = Walled::new(db, people.tenant_id);
    let scope = walled.scope();
    let config = Arc::new(TenantConfig::load(&scope).await?);
    let stages = config
        .default_pipeline()
        .context("the new tenant has no default pipeline")?
        .1
        .clone();
    let maker = LeadMaker::new(&options, &people, config, &stages)?;
    let tally = load(db, people.tenant_id, maker, options.leads).await?;
    crate::db::refresh_statistics(db, crate::db::LEAD_TABLES)
        .await
        .context("failed to refresh the planner's statistics after loading the leads")?;

    let teams = u32::try_from(people.teams.len()).unwrap_or(u32::MAX);
    let summary = DemoSummary {
        owner_email: user_email("owner", &people.slug),
        tenant_slug: people.slug,
        password,
        managers: teams,
        reps: options.reps,
        teams,
        leads: options.leads,
        won: tally.won,
        lost: tally.lost,
        activities: tally.activities,
        events: tally.events,
        tiers: tally.tiers,
        flags: tally.flags,
        setup_elapsed,
        load_elapsed: started.elapsed(),
    };
    tracing::info!(
        tenant_id = %people.tenant_id,
        leads = summary.leads,
        activities = summary.activities,
        "demo tenant created"
    );
    Ok(summary)
}

/// Makes and writes `leads` leads, one transaction per batch. The next
/// batch is made, scored and built into statements on a blocking thread
/// while the database writes the previous one: each takes about as long.
async fn load(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    maker: LeadMaker,
    leads: u64,
) -> anyhow::Result<Tally> {
    let backend = db.get_database_backend();
    let batch = |mut maker: LeadMaker, from: u64| {
        let to = (from + LEADS_PER_TRANSACTION).min(leads);
        tokio::task::spawn_blocking(move || {
            let statements = maker.make_batch(from..to, backend);
            (maker, from..to, statements)
        })
    };
    let mut pending = Some(batch(maker, 0));
    let mut tally = None;
    while let Some(task) = pending.take() {
        let (maker, made, statements) = task
            .await
            .context("the lead generator stopped unexpectedly")?;
        let statements = statements?;
        if made.end < leads {
            pending = Some(batch(maker, made.end));
        } else {
            tally = Some(maker.tally);
        }
        write(db, tenant_id, statements)
            .await
            .with_context(|| format!("failed to write leads {} to {}", made.start + 1, made.end))?;
        if made.end % 100_000 == 0 {
            tracing::info!(leads = made.end, of = leads, "demo leads written");
        }
    }
    tally.context("the lead generator made no batch")
}

/// Runs a batch in one transaction.
async fn write(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    batch: lead_writer::PreparedBulk,
) -> anyhow::Result<()> {
    let txn = begin_write(db).await?;
    TenantScope::enter(&txn, tenant_id).await?;
    batch.write(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// The tenant's people, as the leads need them.
struct People {
    tenant_id: Uuid,
    slug: String,
    owner: UserId,
    teams: Vec<TeamId>,
    /// Each rep with their team.
    reps: Vec<(UserId, TeamId)>,
}

/// Signs the tenant up, then makes the teams, one manager per team and the
/// reps, round-robin over the teams, all with `password`.
async fn create_people(
    db: &DatabaseConnection,
    auth: &Auth,
    options: &DemoOptions,
    password: &Secret,
) -> anyhow::Result<People> {
    let tenant_slug = Slug::parse(&options.tenant_slug)
        .map_err(|why| anyhow::anyhow!("--tenant \"{}\" {why}", options.tenant_slug))?;
    let slug = tenant_slug.as_str().to_owned();
    // Built from a valid slug, these are addresses.
    let email_of = |local: &str| {
        Email::parse(&user_email(local, &slug))
            .map_err(|why| anyhow::anyhow!("the demo address of {local} {why}"))
    };
    let now = options.now;
    let session = account::sign_up(
        db,
        auth,
        SignUp {
            tenant_name: format!("{slug} (demo)"),
            tenant_slug,
            email: email_of("owner")?,
            password: password.expose().to_owned(),
            display_name: "Demo Owner".into(),
            locale: Locale::En,
            time_zone: "Asia/Shanghai".into(),
        },
        "command line",
        now,
    )
    .await
    .map_err(|err| match err {
        AppError::Conflict { .. } => anyhow::anyhow!(
            "the tenant \"{slug}\" already exists; choose another --tenant, or use a fresh database"
        ),
        other => anyhow::Error::new(other).context("failed to create the demo tenant"),
    })?;
    let owner = Principal {
        tenant_id: session.tenant.id,
        user_id: session.user.id,
        role: Role::Owner,
    };

    let mut teams = Vec::with_capacity(TEAMS.len());
    for name in TEAMS {
        let team = account::create_team(db, &owner, name, &[], now)
            .await
            .with_context(|| format!("failed to create the team {name}"))?;
        teams.push(team.id);
    }
    let new_user = |local: String, role: Role, team: TeamId| {
        anyhow::Ok(NewUser {
            display_name: display_name(&local),
            email: email_of(&local)?,
            password: password.expose().to_owned(),
            role,
            team_ids: vec![team],
        })
    };
    for (n, team) in (1..).zip(&teams) {
        account::create_user(
            db,
            &owner,
            new_user(format!("manager{n}"), Role::Manager, *team)?,
            now,
        )
        .await
        .with_context(|| format!("failed to create manager{n}"))?;
    }
    let mut reps = Vec::new();
    for (n, team) in (1..=options.reps).zip(teams.iter().cycle()) {
        let rep = account::create_user(
            db,
            &owner,
            new_user(format!("rep{n}"), Role::Rep, *team)?,
            now,
        )
        .await
        .with_context(|| format!("failed to create rep{n}"))?;
        reps.push((rep.id, *team));
    }
    Ok(People {
        tenant_id: session.tenant.id,
        slug,
        owner: session.user.id,
        teams,
        reps,
    })
}

/// `rep12` → `Rep 12`.
fn display_name(local: &str) -> String {
    let digits = local.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let word = &local[..local.len() - digits.len()];
    let mut chars = word.chars();
    let capitalised: String = chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect();
    format!("{capitalised} {digits}")
}

/// The demo's generator. Xoshiro256++ is fast, and unlike `StdRng` it is
/// promised to draw the same numbers from the same seed in every `rand`
/// release, so a seed keeps making the same tenant. Not for anything secret.
type Rng = Xoshiro256PlusPlus;

/// An index drawn in proportion to `weights`; `None` when none is positive.
fn weighted(rng: &mut Rng, weights: &[f64]) -> Option<usize> {
    WeightedIndex::new(weights).ok().map(|w| rng.sample(w))
}

/// `x` rounded down or up at random, so averages come out right.
fn round_at_random(rng: &mut Rng, x: f64) -> usize {
    let x = x.max(0.0);
    let floor = x.floor();
    floor as usize + usize::from(rng.random_bool(x - floor))
}

/// The distributions leads are drawn from, built once.
struct Shapes {
    /// A lead's hidden quality, from 0 to 1: most leads are middling, few
    /// are excellent.
    quality: Triangular<f64>,
    /// Company sizes, by their share of leads (`SIZES`).
    size: WeightedIndex<f64>,
    /// A deal's value as a multiple of its size's median.
    deal_spread: LogNormal<f64>,
    /// How far a rating strays from the lead's quality.
    rating_noise: Normal<f64>,
}

impl Shapes {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            quality: Triangular::new(0.0, 1.0, 0.5).context("the quality distribution")?,
            size: WeightedIndex::new(SIZES.map(|(share, _)| share))
                .context("the company size shares")?,
            deal_spread: LogNormal::new(0.0, 0.8).context("the deal value spread")?,
            rating_noise: Normal::new(0.0, 0.2).context("the rating noise")?,
        })
    }
}

const FIRST_NAMES: [&str; 40] = [
    "Ana", "Ben", "Clara", "David", "Elena", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Julia",
    "Karl", "Laura", "Marco", "Nina", "Oscar", "Paula", "Quentin", "Rosa", "Samuel", "Sofia",
    "Tom", "Uma", "Victor", "Wendy", "Yusuf", "Zoe", "Amir", "Beatriz", "Chloe", "Daniel", "Emma",
    "Farah", "George", "Hannah", "Ivan", "Jasmine", "Kenji", "Leila", "Mateo",
];
const LAST_NAMES: [&str; 40] = [
    "Fischer",
    "Miller",
    "Novak",
    "Garcia",
    "Rossi",
    "Schmidt",
    "Johnson",
    "Dubois",
    "Silva",
    "Kowalski",
    "Andersen",
    "Okafor",
    "Tanaka",
    "Kim",
    "Patel",
    "Nguyen",
    "Costa",
    "Weber",
    "Jansen",
    "Murphy",
    "Lopez",
    "Martin",
    "Berg",
    "Horvat",
    "Moreau",
    "Yilmaz",
    "Ivanova",
    "Sato",
    "Reyes",
    "Walsh",
    "Becker",
    "Haddad",
    "Lindqvist",
    "Romano",
    "Clarke",
    "Mendes",
    "Nakamura",
    "Varga",
    "Schultz",
    "Oliveira",
];
/// (surname, pinyin); the pinyin are distinct, so emails are too.
const CN_SURNAMES: [(&str, &str); 20] = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("高", "gao"),
    ("林", "lin"),
    ("罗", "luo"),
];
const CN_GIVEN_NAMES: [(&str, &str); 30] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀英", "xiuying"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("桂英", "guiying"),
    ("建华", "jianhua"),
    ("晓燕", "xiaoyan"),
    ("志强", "zhiqiang"),
    ("海燕", "haiyan"),
    ("文博", "wenbo"),
    ("思远", "siyuan"),
    ("雨桐", "yutong"),
    ("子涵", "zihan"),
];
const COMPANY_PREFIXES: [&str; 40] = [
    "Northwind",
    "Bluepeak",
    "Crescent",
    "Evergreen",
    "Ironwood",
    "Silverline",
    "Brightwater",
    "Redstone",
    "Summit",
    "Harbor",
    "Oakridge",
    "Pioneer",
    "Keystone",
    "Lakeside",
    "Granite",
    "Falcon",
    "Meridian",
    "Aurora",
    "Cedar",
    "Horizon",
    "Atlas",
    "Beacon",
    "Cobalt",
    "Juniper",
    "Vertex",
    "Riverbend",
    "Stonebridge",
    "Westfield",
    "Clearview",
    "Maplewood",
    "Sunrise",
    "Tidewater",
    "Highland",
    "Copperleaf",
    "Northstar",
    "Bayside",
    "Greenfield",
    "Skyline",
    "Foxglove",
    "Windmill",
];
const COMPANY_SUFFIXES: [&str; 6] = ["Inc.", "Ltd.", "GmbH", "LLC", "Group", "Co."];
/// (name, pinyin)
const CN_CITIES: [(&str, &str); 10] = [
    ("北京", "beijing"),
    ("上海", "shanghai"),
    ("深圳", "shenzhen"),
    ("广州", "guangzhou"),
    ("杭州", "hangzhou"),
    ("成都", "chengdu"),
    ("苏州", "suzhou"),
    ("南京", "nanjing"),
    ("武汉", "wuhan"),
    ("西安", "xian"),
];
const CN_BRANDS: [(&str, &str); 20] = [
    ("华信", "huaxin"),
    ("星辰", "xingchen"),
    ("博远", "boyuan"),
    ("海润", "hairun"),
    ("恒达", "hengda"),
    ("云帆", "yunfan"),
    ("瑞丰", "ruifeng"),
    ("金桥", "jinqiao"),
    ("宏图", "hongtu"),
    ("远航", "yuanhang"),
    ("汇通", "huitong"),
    ("鼎盛", "dingsheng"),
    ("卓越", "zhuoyue"),
    ("安和", "anhe"),
    ("明德", "mingde"),
    ("永信", "yongxin"),
    ("长青", "changqing"),
    ("启明", "qiming"),
    ("天成", "tiancheng"),
    ("新锐", "xinrui"),
];

/// An industry, the words its companies are named with, and how common it
/// is among leads.
struct Industry {
    name: &'static str,
    nouns: &'static [&'static str],
    /// (word in a Chinese company name, its pinyin)
    zh: (&'static str, &'static str),
    weight: f64,
}

const INDUSTRIES: [Industry; 9] = [
    Industry {
        name: "Software",
        nouns: &["Software", "Cloud", "Analytics", "Systems"],
        zh: ("软件", "ruanjian"),
        weight: 3.0,
    },
    Industry {
        name: "Manufacturing",
        nouns: &["Manufacturing", "Precision", "Machinery", "Industries"],
        zh: ("精密制造", "zhizao"),
        weight: 2.5,
    },
    Industry {
        name: "Healthcare",
        nouns: &["Health", "Medical", "Biotech"],
        zh: ("医疗器械", "yiliao"),
        weight: 1.5,
    },
    Industry {
        name: "Logistics",
        nouns: &["Logistics", "Freight", "Shipping"],
        zh: ("物流", "wuliu"),
        weight: 1.2,
    },
    Industry {
        name: "Retail",
        nouns: &["Retail", "Goods", "Markets"],
        zh: ("商贸", "shangmao"),
        weight: 1.5,
    },
    Industry {
        name: "Financial services",
        nouns: &["Capital", "Finance", "Insurance"],
        zh: ("金融服务", "jinrong"),
        weight: 1.0,
    },
    Industry {
        name: "Education",
        nouns: &["Learning", "Academy", "Education"],
        zh: ("教育科技", "jiaoyu"),
        weight: 0.8,
    },
    Industry {
        name: "Energy",
        nouns: &["Energy", "Power", "Solar"],
        zh: ("新能源", "nengyuan"),
        weight: 0.8,
    },
    Industry {
        name: "Construction",
        nouns: &["Builders", "Construction", "Engineering"],
        zh: ("建设工程", "jianshe"),
        weight: 0.7,
    },
];

/// Company sizes from small to large: (share of leads, median deal value).
const SIZES: [(f64, f64); 5] = [
    (0.25, 3_000.0),
    (0.30, 10_000.0),
    (0.25, 30_000.0),
    (0.13, 80_000.0),
    (0.07, 200_000.0),
];

/// How common each option of a category field is, by option; unknown
/// options weigh 1.
const OPTION_WEIGHTS: [(&str, f64); 6] = [
    ("website", 3.5),
    ("referral", 1.5),
    ("event", 1.2),
    ("outbound", 2.0),
    ("partner", 1.0),
    ("other", 0.8),
];

const LOST_REASONS: [&str; 5] = [
    "chose a competitor",
    "no budget this year",
    "no decision was made",
    "went quiet",
    "price too high",
];

/// Who a lead is, and where they work.
#[derive(Debug, PartialEq)]
struct Identity {
    name: String,
    company: String,
    email: String,
    phone: Option<String>,
    industry: &'static str,
}

/// Draws identities whose company and name pair (the duplicate key) and
/// email are unique within the run.
struct Identities {
    taken: HashSet<u64>,
    /// Industries, by their share of leads.
    industries: WeightedIndex<f64>,
}

impl Identities {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            taken: HashSet::new(),
            industries: WeightedIndex::new(INDUSTRIES.map(|i| i.weight))
                .context("the industry shares")?,
        })
    }

    fn draw(&mut self, rng: &mut Rng, index: u64) -> Identity {
        let chinese = rng.random_bool(0.3);
        let industry_index = rng.sample(&self.industries);
        let industry = INDUSTRIES.get(industry_index).unwrap_or(&INDUSTRIES[0]);
        // Re-draw the company and person until the pair is new; a run large
        // enough to exhaust the lists falls back to numbering the person.
        for _ in 0..64 {
            let identity = if chinese {
                self.chinese(rng, industry, industry_index)
            } else {
                self.western(rng, industry, industry_index)
            };
            if let Some(mut identity) = identity {
                identity.phone = phone(rng, chinese, index);
                return identity;
            }
        }
        let mut identity = self.numbered(rng, industry, chinese, index);
        identity.phone = phone(rng, chinese, index);
        identity
    }

    fn western(
        &mut self,
        rng: &mut Rng,
        industry: &Industry,
        industry_index: usize,
    ) -> Option<Identity> {
        let (first, last) = (
            (0..FIRST_NAMES.len()).choose(rng)?,
            (0..LAST_NAMES.len()).choose(rng)?,
        );
        let (prefix, noun, suffix) = (
            (0..COMPANY_PREFIXES.len()).choose(rng)?,
            (0..industry.nouns.len()).choose(rng)?,
            (0..COMPANY_SUFFIXES.len()).choose(rng)?,
        );
        let key = [1, industry_index, prefix, noun, suffix, first, last]
            .iter()
            .fold(0u64, |key, part| key * 64 + *part as u64);
        if !self.taken.insert(key) {
            return None;
        }
        let (first, last) = (FIRST_NAMES.get(first)?, LAST_NAMES.get(last)?);
        let (prefix, noun, suffix) = (
            COMPANY_PREFIXES.get(prefix)?,
            industry.nouns.get(noun)?,
            COMPANY_SUFFIXES.get(suffix)?,
        );
        let domain = format!("{prefix}-{noun}-{suffix}")
            .to_lowercase()
            .replace('.', "");
        Some(Identity {
            name: format!("{first} {last}"),
            company: format!("{prefix} {noun} {suffix}"),
            email: format!("{first}.{last}@{domain}.example").to_lowercase(),
            phone: None,
            industry: industry.name,
        })
    }

    fn chinese(
        &mut self,
        rng: &mut Rng,
        industry: &Industry,
        industry_index: usize,
    ) -> Option<Identity> {
        let (surname, given) = (
            (0..CN_SURNAMES.len()).choose(rng)?,
            (0..CN_GIVEN_NAMES.len()).choose(rng)?,
        );
        let (city, brand) = (
            (0..CN_CITIES.len()).choose(rng)?,
            (0..CN_BRANDS.len()).choose(rng)?,
        );
        let key = [2, industry_index, city, brand, 0, surname, given]
            .iter()
            .fold(0u64, |key, part| key * 64 + *part as u64);
        if !self.taken.insert(key) {
            return None;
        }
        let ((surname, surname_py), (given, given_py)) =
            (CN_SURNAMES.get(surname)?, CN_GIVEN_NAMES.get(given)?);
        let ((city, city_py), (brand, brand_py)) = (CN_CITIES.get(city)?, CN_BRANDS.get(brand)?);
        let (word, word_py) = industry.zh;
        Some(Identity {
            name: format!("{surname}{given}"),
            company: format!("{city}{brand}{word}有限公司"),
            email: format!("{given_py}.{surname_py}@{brand_py}-{word_py}-{city_py}.example"),
            phone: None,
            industry: industry.name,
        })
    }

    /// A person made unique by the lead's number.
    fn numbered(
        &mut self,
        rng: &mut Rng,
        industry: &Industry,
        chinese: bool,
        index: u64,
    ) -> Identity {
        let n = index + 1;
        if chinese {
            let (surname, surname_py) = CN_SURNAMES.choose(rng).copied().unwrap_or(("王", "wang"));
            let (brand, brand_py) = CN_BRANDS.choose(rng).copied().unwrap_or(("华信", "huaxin"));
            let (word, word_py) = industry.zh;
            Identity {
                name: format!("{surname}先生{n}"),
                company: format!("{brand}{word}有限公司"),
                email: format!("{surname_py}.{n}@{brand_py}-{word_py}.example"),
                phone: None,
                industry: industry.name,
            }
        } else {
            let last = LAST_NAMES.choose(rng).copied().unwrap_or("Miller");
            let prefix = COMPANY_PREFIXES.choose(rng).copied().unwrap_or("Northwind");
            Identity {
                name: format!("{last} {n}"),
                company: format!("{prefix} {}", industry.name),
                email: format!("{last}.{n}@{prefix}.example").to_lowercase(),
                phone: None,
                industry: industry.name,
            }
        }
    }
}

/// Most leads have a phone; numbers are fictional (+1 555) or in a Chinese
/// mobile range, and unique by the lead's number. Stored normalised, as
/// `create_lead` stores them.
fn phone(rng: &mut Rng, chinese: bool, index: u64) -> Option<String> {
    if !rng.random_bool(0.6) {
        return None;
    }
    Some(if chinese {
        format!("+86139{:08}", index % 100_000_000)
    } else {
        format!("+1555{:07}", index % 10_000_000)
    })
}

/// How the generator uses a signal type.
#[derive(Clone, Copy, PartialEq)]
enum SignalRole {
    /// Inbound interest: more of it for better leads.
    Interest,
    /// Complaints, no-shows, unsubscribes: more for worse leads.
    Setback,
    /// Urgent: rare, and recent for a few percent of open leads.
    Urgent,
    /// The rep reaching out.
    Outreach,
    /// A purchase, recorded when a lead is won.
    Purchase,
}

struct SignalChoice {
    key: String,
    def: SignalDef,
    direction: Direction,
    role: SignalRole,
    /// Rarer the more points it is worth.
    weight: f64,
}

/// The rows of the stages a lead can be in.
struct StagePlan {
    all: Vec<stage::Model>,
    /// Open stages before the won stage, in order: the funnel.
    funnel: Vec<stage::Model>,
    /// Open stages after it: existing customers.
    after_sale: Vec<stage::Model>,
    won: stage::Model,
    lost: stage::Model,
}

impl StagePlan {
    fn new(stages: &[stage::Model]) -> anyhow::Result<Self> {
        let won_at = stages
            .iter()
            .position(|s| s.kind == StageKind::Won)
            .context("the default pipeline has no won stage")?;
        let won = stages.get(won_at).cloned().context("no won stage")?;
        let lost = stages
            .iter()
            .find(|s| s.kind == StageKind::Lost)
            .cloned()
            .context("the default pipeline has no lost stage")?;
        let open = |s: &&stage::Model| s.kind == StageKind::Open;
        let funnel: Vec<stage::Model> = stages.iter().take(won_at).filter(open).cloned().collect();
        if funnel.is_empty() {
            bail!("the default pipeline has no open stage before its won stage");
        }
        Ok(Self {
            all: stages.to_vec(),
            after_sale: stages.iter().skip(won_at).filter(open).cloned().collect(),
            funnel,
            won,
            lost,
        })
    }

    /// A funnel stage: better leads got further.
    fn funnel_stage(&self, rng: &mut Rng, quality: f64) -> &stage::Model {
        let reach = (quality * rng.random_range(0.3..1.3)).clamp(0.0, 0.999);
        let at = (reach * self.funnel.len() as f64) as usize;
        self.funnel
            .get(at)
            .or(self.funnel.last())
            .unwrap_or(&self.won)
    }
}

/// What the leads came out as, for the summary.
#[derive(Default)]
struct Tally {
    won: u64,
    lost: u64,
    activities: u64,
    events: u64,
    tiers: BTreeMap<String, u64>,
    flags: BTreeMap<&'static str, u64>,
}

/// Makes leads one at a time from the seed.
struct LeadMaker {
    rng: Rng,
    shapes: Shapes,
    identities: Identities,
    tenant_id: Uuid,
    owner: UserId,
    teams: Vec<TeamId>,
    reps: Vec<(UserId, TeamId)>,
    config: Arc<TenantConfig>,
    model: Arc<ModelInUse>,
    stages: StagePlan,
    pipeline_id: PipelineId,
    signals: Vec<SignalChoice>,
    activities_per_lead: f64,
    now: i64,
    scored_at: DateTime<Utc>,
    tally: Tally,
}

impl LeadMaker {
    fn new(
        options: &DemoOptions,
        people: &People,
        config: Arc<TenantConfig>,
        stages: &[stage::Model],
    ) -> anyhow::Result<Self> {
        // A new tenant has only its default model, which scores every team's leads.
        let model = config.model(None)?;
        let signals = config
            .catalog
            .signals
            .iter()
            .filter(|s| !s.retired)
            .map(|s| SignalChoice {
                key: s.key.clone(),
                def: rescoring::signal_def(s),
                direction: s.direction,
                role: if s.urgent {
                    SignalRole::Urgent
                } else if s.key == "purchase" {
                    SignalRole::Purchase
                } else if s.direction == Direction::Outbound {
                    SignalRole::Outreach
                } else if s.points < 0.0 {
                    SignalRole::Setback
                } else {
                    SignalRole::Interest
                },
                weight: 1.0 / s.points.abs().max(1.0),
            })
            .collect();
        let plan = StagePlan::new(stages)?;
        Ok(Self {
            // `seed_from_u64` mixes the seed, so nearby seeds give unrelated data.
            rng: Rng::seed_from_u64(options.seed),
            shapes: Shapes::new()?,
            identities: Identities::new()?,
            tenant_id: people.tenant_id,
            owner: people.owner,
            teams: people.teams.clone(),
            reps: people.reps.clone(),
            config,
            model,
            pipeline_id: plan.won.pipeline_id,
            stages: plan,
            signals,
            activities_per_lead: f64::from(options.activities_per_lead),
            now: rescoring::secs(options.now),
            scored_at: options.now,
            tally: Tally::default(),
        })
    }

    /// Makes leads `range` and builds the statements that insert them.
    fn make_batch(
        &mut self,
        range: Range<u64>,
        backend: DbBackend,
    ) -> anyhow::Result<lead_writer::PreparedBulk> {
        let mut batch = lead_writer::Bulk::new(self.tenant_id, backend);
        for index in range {
            self.make(index, &mut batch)?;
        }
        let (activities, events) = batch.counts();
        self.tally.activities += activities as u64;
        self.tally.events += events as u64;
        Ok(batch.prepared())
    }

    /// Makes lead number `index` (from 0) with its activities and events,
    /// scores it and adds it all to `batch`.
    fn make(&mut self, index: u64, batch: &mut lead_writer::Bulk) -> anyhow::Result<()> {
        let quality = self.rng.sample(self.shapes.quality);
        let profile = self.profile(index, quality);
        let story = self.story(quality);
        let lead_id = LeadId::new();
        let totals = self.activities(lead_id, &profile, &story, quality, batch);
        let (stage, stage_entered_at) = self.stage(&story, quality);
        let status = match (story.closed_at, story.won) {
            (None, _) => LeadStatus::Open,
            (Some(_), true) => LeadStatus::Won,
            (Some(_), false) => LeadStatus::Lost,
        };
        if let Some(at) = story.closed_at {
            let from = self.stages.funnel_stage(&mut self.rng, quality).key.clone();
            batch.lead_event(lead_event::ActiveModel {
                tenant_id: Set(self.tenant_id),
                id: Set(Uuid::now_v7()),
                lead_id: Set(lead_id),
                kind: Set("STAGE".into()),
                actor_id: Set(profile.owner_id.or(Some(self.owner))),
                at: Set(rescoring::from_secs(at)),
                from_value: Set(Some(from)),
                to_value: Set(Some(stage.key.clone())),
                data: Set(None),
            });
            if story.won {
                self.tally.won += 1;
            } else {
                self.tally.lost += 1;
            }
        }

        let who = profile.identity;
        let creator = profile.owner_id.unwrap_or(self.owner);
        let mut lead = lead::Model {
            name: who.name,
            company: Some(who.company),
            email: Some(who.email),
            phone: who.phone,
            industry: Some(who.industry.to_owned()),
            source: profile.source,
            attributes: profile.attributes,
            deal_value: profile.deal_value,
            owner_id: profile.owner_id,
            team_id: profile.team_id,
            stage_id: stage.id,
            stage_entered_at: rescoring::from_secs(stage_entered_at),
            status,
            closed_at: story.closed_at.map(rescoring::from_secs),
            close_reason: match status {
                LeadStatus::Lost => LOST_REASONS.choose(&mut self.rng).map(|r| (*r).to_owned()),
                _ => None,
            },
            last_inbound_at: totals.last_inbound,
            last_outbound_at: totals.last_outbound,
            signal_state: totals.state.to_bytes(),
            created_at: rescoring::from_secs(story.created),
            ..lead_writer::blank(
                self.tenant_id,
                lead_id,
                creator,
                self.pipeline_id,
                self.scored_at,
            )
        };
        let card = lead_writer::score(
            &mut lead,
            None,
            &self.stages.all,
            &self.model,
            self.scored_at,
        )?;
        batch.insert(lead, "created", self.scored_at);
        for flag in &card.flags {
            *self.tally.flags.entry(flag.name()).or_default() += 1;
        }
        *self.tally.tiers.entry(card.tier).or_default() += 1;
        Ok(())
    }

    /// Who the lead is, what they are worth, their ratings and their owner.
    fn profile(&mut self, index: u64, quality: f64) -> Profile {
        let rng = &mut self.rng;
        let identity = self.identities.draw(rng, index);
        let size = rng.sample(&self.shapes.size);
        let median = SIZES.get(size).map_or(10_000.0, |(_, median)| *median);
        // Log-normal around the size's median, a little higher for good leads.
        let deal_value = rng.random_bool(0.9).then(|| {
            let value = median * rng.sample(self.shapes.deal_spread) * (0.6 + 0.8 * quality);
            (value / 100.0).round().max(1.0) * 100.0
        });
        let (attributes, source) = attributes(
            rng,
            &self.config.catalog.fields,
            quality,
            self.shapes.rating_noise,
            size,
        );
        // Most leads belong to a rep (and so to their team); the rest wait in
        // the shared pool, some earmarked for a team.
        let (owner_id, team_id) = match self.reps.choose(rng) {
            Some((rep, team)) if rng.random_bool(0.8) => (Some(*rep), Some(*team)),
            _ => (
                None,
                rng.random_bool(0.5)
                    .then(|| self.teams.choose(rng).copied())
                    .flatten(),
            ),
        };
        Profile {
            identity,
            deal_value,
            attributes,
            source,
            owner_id,
            team_id,
        }
    }

    /// When the lead came in, whether and when it closed, and when we last
    /// heard from it.
    fn story(&mut self, quality: f64) -> Story {
        let rng = &mut self.rng;
        let now = self.now;
        let age = rng.random_range(0.0..365.0 * DAY as f64) as i64;
        let created = now - age;
        // Older leads are more often decided; better ones more often won.
        let closes = age > 14 * DAY && rng.random_bool(0.25 * age as f64 / (365.0 * DAY as f64));
        let won = closes && rng.random_bool(0.15 + 0.7 * quality);
        let closed_at = closes.then(|| created + (age as f64 * rng.random_range(0.2..0.95)) as i64);
        // Open leads either still talk to us or went quiet a while ago.
        let last_touch = closed_at.unwrap_or_else(|| {
            let gap_days = if rng.random_bool(0.25 + 0.6 * quality) {
                rng.random_range(0.0..10.0)
            } else {
                rng.random_range(14.0..240.0)
            };
            (now - (gap_days * DAY as f64) as i64).max(created)
        });
        Story {
            created,
            closed_at,
            won,
            last_touch,
        }
    }

    /// The lead's activities between its creation and its last touch, added
    /// to `batch` and folded into its activity state.
    fn activities(
        &mut self,
        lead_id: LeadId,
        profile: &Profile,
        story: &Story,
        quality: f64,
        batch: &mut lead_writer::Bulk,
    ) -> ActivityTotals {
        let rng = &mut self.rng;
        let (created, last_touch) = (story.created, story.last_touch);
        let expected =
            self.activities_per_lead * (0.25 + 1.5 * quality) * rng.random_range(0.5..1.5);
        let mut times: Vec<i64> = (0..round_at_random(rng, expected))
            .map(|_| {
                // Denser towards the last touch, as conversations pick up.
                let back = (last_touch - created) as f64 * rng.random::<f64>().powi(2);
                last_touch - back as i64
            })
            .collect();
        times.sort_unstable();
        let mut picks: Vec<(i64, usize, Option<f64>)> = times
            .into_iter()
            .filter_map(|at| pick_signal(rng, &self.signals, quality).map(|s| (at, s, None)))
            .collect();
        if story.closed_at.is_none() && rng.random_bool(0.01 + 0.05 * quality) {
            let at = (self.now - rng.random_range(0.0..6.0 * DAY as f64) as i64).max(created);
            if let Some(s) = pick_role(rng, &self.signals, SignalRole::Urgent) {
                picks.push((at, s, None));
            }
        }
        if let (true, Some(at)) = (story.won, story.closed_at)
            && let Some(s) = pick_role(rng, &self.signals, SignalRole::Purchase)
        {
            picks.push((at, s, profile.deal_value));
        }

        let mut totals = ActivityTotals {
            state: ActivityState::new(),
            last_inbound: None,
            last_outbound: None,
        };
        for (at, signal, amount) in picks {
            let Some(signal) = self.signals.get(signal) else {
                continue;
            };
            // As `record_activity` folds it: decayed counts by signal, in the
            // activity's direction.
            let direction = match signal.direction {
                Direction::Inbound => scoring::Direction::Inbound,
                Direction::Outbound => scoring::Direction::Outbound,
            };
            totals.state.record_as(&signal.def, direction, at, amount);
            let occurred_at = rescoring::from_secs(at);
            let last = match signal.direction {
                Direction::Inbound => &mut totals.last_inbound,
                Direction::Outbound => &mut totals.last_outbound,
            };
            *last = (*last).max(Some(occurred_at));
            batch.activity(activity::ActiveModel {
                tenant_id: Set(self.tenant_id),
                id: Set(Uuid::now_v7()),
                lead_id: Set(lead_id),
                signal_key: Set(signal.key.clone()),
                direction: Set(signal.direction),
                occurred_at: Set(occurred_at),
                note: Set(None),
                amount: Set(amount),
                created_by: Set(match signal.direction {
                    Direction::Outbound => profile.owner_id,
                    Direction::Inbound => None,
                }),
                created_at: Set(occurred_at),
            });
        }
        totals
    }

    /// The lead's stage and when it entered it (Unix seconds).
    fn stage(&mut self, story: &Story, quality: f64) -> (stage::Model, i64) {
        let rng = &mut self.rng;
        let stages = &self.stages;
        match (story.closed_at, story.won) {
            (Some(at), true) => (stages.won.clone(), at),
            (Some(at), false) => (stages.lost.clone(), at),
            (None, _) => {
                let stage = match stages.after_sale.first() {
                    Some(after_sale) if rng.random_bool(0.06 * quality) => after_sale,
                    _ => stages.funnel_stage(rng, quality),
                };
                // Moved on in the fortnight before the last touch, so leads
                // that still talk to us are not all stale.
                let entered = if stages.funnel.first().is_some_and(|f| f.id == stage.id) {
                    story.created
                } else {
                    (story.last_touch - rng.random_range(0.0..14.0 * DAY as f64) as i64)
                        .max(story.created)
                };
                (stage.clone(), entered)
            }
        }
    }
}

/// Who a lead is and what it is worth.
struct Profile {
    identity: Identity,
    deal_value: Option<f64>,
    attributes: Value,
    source: Option<String>,
    owner_id: Option<UserId>,
    team_id: Option<TeamId>,
}

/// A lead's life so far, in Unix seconds.
struct Story {
    created: i64,
    closed_at: Option<i64>,
    won: bool,
    /// The last activity happens by then: the close, or the last time the
    /// lead was in touch.
    last_touch: i64,
}

/// What a lead's activities add up to.
struct ActivityTotals {
    state: ActivityState,
    last_inbound: Option<DateTime<Utc>>,
    last_outbound: Option<DateTime<Utc>>,
}

/// An everyday signal: the rep reaching out about a third of the time,
/// setbacks mostly for poor leads, the odd urgent one for good leads, and
/// interest otherwise.
fn pick_signal(rng: &mut Rng, signals: &[SignalChoice], quality: f64) -> Option<usize> {
    let setback = 0.15 * (1.0 - quality).powi(2);
    let urgent = 0.02 * quality;
    let roles = [
        (SignalRole::Outreach, 0.35),
        (SignalRole::Setback, setback),
        (SignalRole::Urgent, urgent),
        (SignalRole::Interest, 0.65 - setback - urgent),
    ];
    let role = weighted(rng, &roles.map(|(_, share)| share))
        .and_then(|i| roles.get(i))
        .map_or(SignalRole::Interest, |(role, _)| *role);
    pick_role(rng, signals, role)
}

/// A signal of `role`, the cheaper ones more often.
fn pick_role(rng: &mut Rng, signals: &[SignalChoice], role: SignalRole) -> Option<usize> {
    let weights: Vec<f64> = signals
        .iter()
        .map(|s| if s.role == role { s.weight } else { 0.0 })
        .collect();
    weighted(rng, &weights)
}

/// The lead's field values, as `merge_attributes` would store them, and its
/// source. Ratings follow the lead's quality with some noise, so BANT and
/// the rating dimensions separate good leads from poor ones; a few are not
/// rated yet.
fn attributes(
    rng: &mut Rng,
    fields: &[entity::lead_field::Model],
    quality: f64,
    rating_noise: Normal<f64>,
    size: usize,
) -> (Value, Option<String>) {
    let mut values = Map::new();
    let mut source = None;
    for field in fields {
        match field.field_type {
            FieldType::Rating => {
                if rng.random_bool(0.1) {
                    continue;
                }
                let rating = (1.0 + 4.0 * (quality + rng.sample(rating_noise)))
                    .round()
                    .clamp(1.0, 5.0);
                values.insert(field.key.clone(), json!(rating as i64));
            }
            FieldType::Category => {
                let options: Vec<String> =
                    serde_json::from_value(field.options.clone()).unwrap_or_default();
                let chosen = if field.key == "company_size" && options.len() == SIZES.len() {
                    options.get(size)
                } else {
                    let weights: Vec<f64> = options
                        .iter()
                        .map(|o| {
                            OPTION_WEIGHTS
                                .iter()
                                .find(|(name, _)| name == o)
                                .map_or(1.0, |(_, w)| *w)
                        })
                        .collect();
                    weighted(rng, &weights).and_then(|i| options.get(i))
                };
                if let Some(chosen) = chosen {
                    if field.key == "source" {
                        source = Some(chosen.clone());
                    }
                    values.insert(field.key.clone(), json!(chosen));
                }
            }
            FieldType::Boolean => {
                values.insert(field.key.clone(), json!(rng.random_bool(quality)));
            }
            FieldType::Number | FieldType::Text | FieldType::Date => {}
        }
    }
    (Value::Object(values), source)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_people() {
        let draw = |seed| {
            let mut rng = Rng::seed_from_u64(seed);
            let mut identities = Identities::new().unwrap();
            (0..100)
                .map(|index| identities.draw(&mut rng, index))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn weights_pick_only_what_can_be_picked() {
        let mut rng = Rng::seed_from_u64(7);
        for _ in 0..1_000 {
            assert_eq!(weighted(&mut rng, &[0.0, 1.0, 0.0]), Some(1));
        }
        assert_eq!(weighted(&mut rng, &[0.0, 0.0]), None);
        assert_eq!(weighted(&mut rng, &[]), None);
    }

    #[test]
    fn rounding_at_random_keeps_the_average() {
        let mut rng = Rng::seed_from_u64(1);
        let total: usize = (0..100_000).map(|_| round_at_random(&mut rng, 2.3)).sum();
        let average = total as f64 / 100_000.0;
        assert!((average - 2.3).abs() < 0.02, "{average}");
    }

    #[test]
    fn identities_never_repeat_a_duplicate_key_an_email_or_a_phone() {
        let mut rng = Rng::seed_from_u64(42);
        let mut identities = Identities::new().unwrap();
        let (mut keys, mut emails, mut phones) = (HashSet::new(), HashSet::new(), HashSet::new());
        for index in 0..50_000 {
            let who = identities.draw(&mut rng, index);
            assert!(
                keys.insert(format!("{}\u{1f}{}", who.company, who.name)),
                "{who:?}"
            );
            assert!(emails.insert(who.email.clone()), "{who:?}");
            assert!(Email::parse(&who.email).is_ok(), "{who:?}");
            if let Some(phone) = who.phone {
                assert!(phones.insert(phone), "{index}");
            }
        }
    }

    #[test]
    fn exhausted_word_lists_fall_back_to_numbered_people() {
        let mut rng = Rng::seed_from_u64(3);
        let mut identities = Identities::new().unwrap();
        let industry = &INDUSTRIES[0];
        let a = identities.numbered(&mut rng, industry, true, 9);
        let b = identities.numbered(&mut rng, industry, false, 9);
        assert!(a.name.ends_with("10") && b.name.ends_with("10"));
        assert_ne!(a.email, b.email);
    }

    #[test]
    fn display_names_read_as_words() {
        assert_eq!(display_name("rep12"), "Rep 12");
        assert_eq!(display_name("manager1"), "Manager 1");
    }
}
