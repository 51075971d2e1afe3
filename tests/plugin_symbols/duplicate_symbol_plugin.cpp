// The negative control of scripts/check-plugin-symbols: a plugin built the way libdtrain_cuda.so
// once was (default visibility, no -Bsymbolic-functions) that defines a name core also defines
// and exports, dtrain::cuda::allow_tf32(), and calls it. The check must report both the
// duplicated definition and the call's dynamic relocation; a check that passes this library
// would have passed the library that looped for ever.
namespace dtrain::cuda {

bool allow_tf32() { return true; }

}  // namespace dtrain::cuda

// A call to the plugin's own allow_tf32() through the symbol table (the name is interposable).
extern "C" int duplicate_symbol_plugin_uses_its_own_function() { return dtrain::cuda::allow_tf32() ? 1 : 0; }
