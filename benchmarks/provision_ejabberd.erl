%%% Benchmark accounts and rosters for ejabberd (benchmarks/servers.py, EjabberdServer).
%%%
%%% Loaded into a private ejabberd started with `-s ejabberd` (the same config, spool and
%%% node as the measured server, listener included), it reads a file of Erlang terms
%%% written by servers.py and stores, through ejabberd's own API:
%%%
%%%   {host, Host}.
%%%   {scram, Hash, StoredKeyB64, ServerKeyB64, SaltB64, IterationCount}.
%%%       the SCRAM material every account gets (ejabberd keeps one credential per
%%%       account, base64 fields as ejabberd_auth:password_to_scram/3 makes them)
%%%   {users, Prefix, Count}.
%%%       accounts Prefix0 .. Prefix<Count-1>; an account that already has this material
%%%       is left alone
%%%   {roster, User, [Contact]}.
%%%       User's roster: these contacts, subscription both (one transaction per user,
%%%       as ejabberd's XEP-0227 importer writes them)
%%%
%%% and prints one line of JSON: {"created": N, "existing": N, "rosters": N}.
%%% Why not `ejabberdctl import_piefxis`: ejabberd 23.01's XEP-0227 reader stores the
%%% base64-decoded SCRAM keys where the rest of ejabberd expects base64 text (its own
%%% exporter encodes twice to match), so a conforming file gives accounts no one can log
%%% in to; and this way no Erlang distribution is needed.
-module(provision_ejabberd).
-export([run/1]).

%% Compiled with {i, <the xmpp library's include directory>}: Debian installs it as
%% p1_xmpp-<version>, which -include_lib("xmpp/...") does not find.
-include("scram.hrl").
-include("xmpp.hrl").

run(Path) ->
    {ok, Terms} = file:consult(Path),
    {host, Host} = lists:keyfind(host, 1, Terms),
    {scram, Hash, Stored, Server, Salt, Iterations} = lists:keyfind(scram, 1, Terms),
    Scram = #scram{storedkey = Stored, serverkey = Server, salt = Salt, hash = Hash,
                   iterationcount = Iterations},
    {Created, Existing} =
        lists:foldl(
          fun({users, Prefix, Count}, Acc) ->
                  lists:foldl(fun(I, Acc1) -> account(Prefix, I, Host, Scram, Acc1) end,
                              Acc, lists:seq(0, Count - 1));
             (_, Acc) ->
                  Acc
          end, {0, 0}, Terms),
    Rosters = [roster(Host, User, Contacts) || {roster, User, Contacts} <- Terms],
    io:format("~n{\"created\": ~B, \"existing\": ~B, \"rosters\": ~B}~n",
              [Created, Existing, length(Rosters)]).

account(Prefix, I, Host, Scram, {Created, Existing}) ->
    User = <<Prefix/binary, (integer_to_binary(I))/binary>>,
    case ejabberd_auth:get_password(User, Host) of
        Scram ->
            {Created, Existing + 1};
        _ ->
            ok = ejabberd_auth:set_password(User, Host, Scram),
            {Created + 1, Existing}
    end.

roster(Host, User, Contacts) ->
    Items = [#roster_item{jid = jid:make(Contact, Host), subscription = both}
             || Contact <- Contacts],
    {atomic, _} = mod_roster:set_items(User, Host, #roster_query{items = Items}),
    User.
