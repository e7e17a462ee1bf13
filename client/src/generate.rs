//! Deterministic, realistic agency data: names with accents, real birthdates,
//! 8-digit documents and a chosen number of winning bets. Used by the tests,
//! the load generator and to fill `.data/` when the course files are absent.

use std::io::{self, Write};

use lottery_protocol::{Bet, WINNING_NUMBER};

const FIRST_NAMES: &[&str] = &[
    "Santiago",
    "Valentina",
    "Joaquín",
    "Sofía",
    "Matías",
    "Martina",
    "Benjamín",
    "Lucía",
    "Tomás",
    "Agustina",
    "María José",
    "Juan Ignacio",
    "Ñusta",
    "Camila",
    "Thiago",
    "Florencia",
    "Máximo",
    "Renata",
    "Germán",
    "Inés",
];
const LAST_NAMES: &[&str] = &[
    "González",
    "Rodríguez",
    "Fernández",
    "López",
    "Martínez",
    "Pérez",
    "Gómez",
    "Díaz",
    "Sánchez",
    "Romero",
    "Muñoz",
    "Álvarez",
    "Ibáñez",
    "Castaño",
    "O'Connor",
    "Núñez del Prado",
    "Acuña",
    "Peña",
    "Suárez",
    "Benítez",
];

/// A small xorshift generator: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `count` bets of `agency`, `winners` of them winning (spread through the file).
/// The same arguments always give the same bets. Documents are unique within
/// an agency and, for agencies below 1000 with under 50,000 bets, across agencies.
pub fn agency_bets(agency: u16, count: usize, winners: usize, seed: u64) -> Vec<Bet> {
    assert!(winners <= count, "{winners} winners among {count} bets");
    let mut rng = Rng::new(seed ^ u64::from(agency) << 32);
    let winning: Vec<usize> = (0..winners).map(|w| w * count / winners.max(1)).collect();
    (0..count)
        .map(|i| {
            let first = FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize];
            let last = LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize];
            let birthdate = format!(
                "{}-{:02}-{:02}",
                1940 + rng.below(66),
                1 + rng.below(12),
                1 + rng.below(28)
            );
            let document = 20_000_000 + (u32::from(agency) % 1000) * 50_000 + i as u32;
            let number = if winning.contains(&i) {
                WINNING_NUMBER
            } else {
                // Any other number from 0 to 9999.
                let n = rng.below(9999) as u32;
                if n >= WINNING_NUMBER { n + 1 } else { n }
            };
            Bet::new(agency, first, last, document, &birthdate, number)
                .expect("generated bets are valid")
        })
        .collect()
}

/// Writes bets in the agency file format (no header).
pub fn write_csv(bets: &[Bet], out: impl Write) -> io::Result<()> {
    let mut csv = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    for bet in bets {
        csv.write_record([
            bet.first_name.as_str(),
            bet.last_name.as_str(),
            &bet.document.to_string(),
            bet.birthdate.as_str(),
            &bet.number.to_string(),
        ])?;
    }
    csv.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::read_bets;

    #[test]
    fn deterministic_with_the_asked_winners_and_round_trips_through_csv() {
        let bets = agency_bets(3, 500, 4, 7);
        assert_eq!(bets, agency_bets(3, 500, 4, 7));
        assert_ne!(bets, agency_bets(3, 500, 4, 8));
        assert_eq!(
            bets.iter().filter(|b| b.number == WINNING_NUMBER).count(),
            4
        );
        assert!(
            bets.iter()
                .any(|b| !b.first_name.is_ascii() || !b.last_name.is_ascii())
        );
        let mut text = Vec::new();
        write_csv(&bets, &mut text).unwrap();
        assert_eq!(read_bets(&text[..], "gen", 3).unwrap(), bets);
        assert!(agency_bets(1, 0, 0, 1).is_empty());
        assert_eq!(agency_bets(1, 1, 1, 1)[0].number, WINNING_NUMBER);
    }
}
